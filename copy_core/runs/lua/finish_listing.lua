-- (run with finalize.lua before it)
-- KEYS: run, dispatched, done, held deletes, chunk items, leases, holders. ARGV: ttl.
-- Returns the status after the listing is closed. Delete chunks it releases are due at once:
-- the reaper sends them.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status == 'created' or status == 'dispatching' then
  redis.call('HSET', KEYS[1], 'status', 'running')
end
redis.call('HSET', KEYS[1], 'listing_done', '1')
touch(tonumber(ARGV[1]), KEYS[1], KEYS[2], KEYS[3])
settle_held(KEYS[1], KEYS[2], KEYS[3], {KEYS[4], KEYS[5], KEYS[6], KEYS[7]}, now_ms())
return maybe_finalize(KEYS[1], KEYS[2], KEYS[3])
