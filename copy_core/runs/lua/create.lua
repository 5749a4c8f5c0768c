-- (run with finalize.lua before it)
-- KEYS: run. ARGV: ttl, max_failures, spec json. Returns the run's status (new or existing).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HGET', KEYS[1], 'status')
end
redis.call('HSET', KEYS[1], 'status', 'created', 'created_at', now(),
           'max_failures', ARGV[2], 'spec', ARGV[3], 'listing_done', '0')
touch(tonumber(ARGV[1]), KEYS[1])
return 'created'
