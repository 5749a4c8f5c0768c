-- (run with finalize.lua before it)
-- KEYS: leases, holders, resend. ARGV: member, resend message json, queue patience (ms), ttl.
-- Puts work other than a chunk in the pool as 'queued' (a batch of parts, the listing), with
-- the message that sends it again should it be lost.
redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], 'queued')
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
touch(tonumber(ARGV[4]), KEYS[1], KEYS[2], KEYS[3])
return 1
