-- (run with finalize.lua before it)
-- KEYS: run, dispatched, done, progress, failures, recorded(chunk), chunk_items, leases,
-- holders, deliveries, held deletes.
-- ARGV: ttl, chunk_id, n_items, the outcomes as one JSON array (encoding a batch as one
-- string costs the worker far less CPU than seven Redis arguments per outcome):
--   [index, status, size, retries, error_code, failure json, [extra counters]] each,
-- the chunk-done channel, and the queue patience (ms) of delete chunks this call releases.
-- Counters are summed in the script and written with one HINCRBY each. A key is counted only
-- if its bit in the chunk's bitmap was not yet set; nothing is counted for a chunk the run
-- never dispatched, nor once the run is over (its summary is final). A chunk whose every key
-- has an outcome is done: it leaves the pool, and its id is published on the channel.
-- Returns {positions (1-based) in the batch of the outcomes that were new, run status,
-- the delete chunks released (the caller sends them)}.
local run = KEYS[1]
local status = redis.call('HGET', run, 'status')
if not status then return {{}, false, {}} end
if is_final(status) or redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 0 then
  return {{}, status, {}}
end
local added, totals = {}, {}
local function add(name, amount)
  if amount ~= 0 then totals[name] = (totals[name] or 0) + amount end
end
for position, o in ipairs(cjson.decode(ARGV[4])) do
  -- o = {index, status, size, retries, error code, failure record, {extra counters}}
  if redis.call('SETBIT', KEYS[6], o[1], 1) == 0 then
    added[#added + 1] = position
    add('objects_' .. o[2], 1)
    if o[2] == 'copied' then add('bytes_copied', o[3]) end
    add('retries', o[4])
    for _, counter in ipairs(o[7]) do add(counter, 1) end
    if o[2] == 'failed' then
      add('errors:' .. o[5], 1)
      redis.call('RPUSH', KEYS[5], o[6])
    end
  end
end
for name, amount in pairs(totals) do redis.call('HINCRBY', run, name, amount) end
if #added > 0 then redis.call('HSET', run, 'progressed_at', now()) end
local recorded = redis.call('HINCRBY', KEYS[4], ARGV[2], #added)
local ttl = tonumber(ARGV[1])
if recorded >= tonumber(ARGV[3]) and redis.call('SADD', KEYS[3], ARGV[2]) == 1 then
  redis.call('HDEL', KEYS[7], ARGV[2])
  drop_lease(KEYS[8], KEYS[9], KEYS[10], false, 'c:' .. ARGV[2])
  redis.call('PUBLISH', ARGV[5], ARGV[2])
end
touch(ttl, run, KEYS[2], KEYS[3], KEYS[4], KEYS[6])
if redis.call('EXISTS', KEYS[5]) == 1 then touch(ttl, KEYS[5]) end
local phase = {KEYS[11], KEYS[7], KEYS[8], KEYS[9]}
local released = settle_held(run, KEYS[2], KEYS[3], phase, now_ms() + tonumber(ARGV[6]))
return {added, maybe_finalize(run, KEYS[2], KEYS[3]), released}
