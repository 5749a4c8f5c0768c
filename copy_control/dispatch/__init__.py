"""From listed keys to chunks in the pool: planning, the fan-out, the listing log, sending."""
