-- (run with finalize.lua before it)
-- KEYS: run, rate. ARGV: ttl, max_failures, spec json, job json, weight, owner,
-- max requests/s, max bytes/s ('' for no cap). Returns the run's status (new or existing).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HGET', KEYS[1], 'status')
end
redis.call('HSET', KEYS[1], 'status', 'created', 'created_at', now(),
           'max_failures', ARGV[2], 'spec', ARGV[3], 'listing_done', '0',
           'job', ARGV[4], 'weight', ARGV[5], 'owner', ARGV[6])
touch(tonumber(ARGV[1]), KEYS[1])
if ARGV[7] ~= '' or ARGV[8] ~= '' then
  redis.call('HSET', KEYS[2], 'rps', ARGV[7], 'bps', ARGV[8])
  touch(tonumber(ARGV[1]), KEYS[2])
end
return 'created'
