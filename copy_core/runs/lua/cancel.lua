-- (run with finalize.lua before it)
-- KEYS: run, dispatched, done, cancel_requested, held deletes, chunk items, leases, holders.
-- ARGV: ttl. A sync's held delete chunks are withheld once the copies have drained. Stops dispatching; chunks drain as
-- 'cancelled'.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  -- No run yet (a worker has still to list it): the worker finds this and ends it cancelled.
  redis.call('SET', KEYS[4], '1', 'EX', tonumber(ARGV[1]))
  return status
end
if is_final(status) then return status end
redis.call('HSET', KEYS[1], 'status', 'cancelling', 'listing_done', '1')
touch(tonumber(ARGV[1]), KEYS[1], KEYS[2], KEYS[3])
settle_held(KEYS[1], KEYS[2], KEYS[3], {KEYS[5], KEYS[6], KEYS[7], KEYS[8]}, now_ms())
return maybe_finalize(KEYS[1], KEYS[2], KEYS[3])
