-- (run with finalize.lua before it)
-- KEYS: leases, holders. ARGV: holder, member, delay (ms), new holder ('retry' or 'queued').
-- Gives work back, if ``holder`` holds it: it is sent again after the delay (by the reaper).
if redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[1] then return 0 end
redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[3]), ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
return 1
