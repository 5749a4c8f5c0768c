"""The state of copy runs in Redis: its key layout, its Lua scripts and the store."""
