-- (run with finalize.lua before it)
-- KEYS: run, dispatched, done, chunk_items, leases, holders, deliveries.
-- ARGV: chunk_id, holder, lease (ms), ttl, items digest, job digest (both '' for a message
-- that refers to the stored chunk rather than carrying it).
-- A worker takes a chunk it received. Returns {verdict, run status, items, job, deliveries}:
--   unknown: no such run (or it expired); ended: the run is over, nothing changes any more;
--   forged: the run never dispatched this chunk, or the message's keys or job are not the
--   ones it dispatched; done: every key has an outcome; held: a live lease of another worker;
--   taken: the caller holds the lease now, and copies the keys without an outcome.
local h = redis.call('HMGET', KEYS[1], 'status', 'job')
local status, job = h[1], h[2]
if not status then return {'unknown', false} end
if is_final(status) then return {'ended', status} end
local chunk = ARGV[1]
if redis.call('SISMEMBER', KEYS[2], chunk) == 0 then return {'forged', status} end
if redis.call('SISMEMBER', KEYS[3], chunk) == 1 then return {'done', status} end
local items = redis.call('HGET', KEYS[4], chunk)
if ARGV[5] ~= '' then
  -- A message carrying its keys: they and its job must be the dispatched ones (a run of an
  -- earlier version stored neither: its dispatched set is all there is to check).
  if items and redis.sha1hex(items) ~= ARGV[5] then return {'forged', status} end
  if job and redis.sha1hex(job) ~= ARGV[6] then return {'forged', status} end
elseif not items then
  return {'forged', status}
end
local member = 'c:' .. chunk
local now = now_ms()
local holder = redis.call('HGET', KEYS[6], member)
local expires = tonumber(redis.call('ZSCORE', KEYS[5], member) or '0')
if holder and holder ~= 'queued' and holder ~= 'retry' and holder ~= ARGV[2]
    and expires > now then
  return {'held', status}
end
redis.call('ZADD', KEYS[5], now + tonumber(ARGV[3]), member)
redis.call('HSET', KEYS[6], member, ARGV[2])
local n = redis.call('HINCRBY', KEYS[7], member, 1)
touch(tonumber(ARGV[4]), KEYS[5], KEYS[6], KEYS[7])
return {'taken', status, items or false, job or false, n}
