-- (run with finalize.lua before it)
-- KEYS: run, dispatched, done, held deletes, chunk items, leases, holders. ARGV: ttl, the
-- number of keys the sync would delete (more than its max_delete).
-- A sync that would delete more than it may: nothing is deleted, and the run fails once its
-- copies are done. Returns the run's status.
local status = redis.call('HGET', KEYS[1], 'status')
if (not status) or is_final(status) then return status end
redis.call('HSET', KEYS[1], 'deletes_refused', ARGV[2])
withhold_held(KEYS[1], KEYS[2], {KEYS[4], KEYS[5], KEYS[6], KEYS[7]})
touch(tonumber(ARGV[1]), KEYS[1], KEYS[2])
return maybe_finalize(KEYS[1], KEYS[2], KEYS[3])
