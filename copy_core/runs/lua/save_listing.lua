-- KEYS: run, listing. ARGV: ttl, the listing's fields as one JSON object, the run's listing
-- counters as one JSON object (absolute values).
-- Records listing progress (partitions, cursors) and counters, only while the run exists: a
-- listing that outlived its run's state (a Redis restarted without it) must not bring back a
-- run hash without a status, which a waiter would read as a run still going.
-- Returns 1 if recorded, 0 if the run is gone.
if redis.call('HEXISTS', KEYS[1], 'status') == 0 then return 0 end
for name, value in pairs(cjson.decode(ARGV[2])) do
  redis.call('HSET', KEYS[2], name, value)
end
for name, value in pairs(cjson.decode(ARGV[3])) do
  redis.call('HSET', KEYS[1], name, value)
end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[1]))
return 1
