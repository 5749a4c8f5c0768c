-- (run with finalize.lua before it)
-- KEYS: leases, holders, deliveries. ARGV: member, holder, lease (ms), ttl.
-- Take work other than a chunk (a batch of parts, the listing): how many times it has been
-- taken, this time included, if the caller holds it now; 0 if another worker holds a live
-- lease on it.
local now = now_ms()
local holder = redis.call('HGET', KEYS[2], ARGV[1])
local expires = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')
if holder and holder ~= 'queued' and holder ~= 'retry' and holder ~= ARGV[2]
    and expires > now then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local n = redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
touch(tonumber(ARGV[4]), KEYS[1], KEYS[2], KEYS[3])
return n
