-- (run with finalize.lua before it)
-- KEYS: leases, holders. ARGV: holder, lease (ms), ttl, members...
-- Extends the leases ``holder`` still holds; returns the members it no longer holds (done, or
-- returned to the queue and taken by another worker while this one could not renew).
local now, lost = now_ms(), {}
for i = 4, #ARGV do
  local member = ARGV[i]
  if redis.call('HGET', KEYS[2], member) == ARGV[1] then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), member)
  else
    lost[#lost + 1] = member
  end
end
touch(tonumber(ARGV[3]), KEYS[1], KEYS[2])
return lost
