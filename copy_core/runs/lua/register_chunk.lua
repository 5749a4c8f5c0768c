-- (run with finalize.lua before it)
-- KEYS: run, dispatched, chunk_items, leases, holders, held deletes.
-- ARGV: ttl, chunk_id, n_items, n_bytes, items json, queue patience (ms), '1' for a delete
-- chunk of a sync, held until the copies are done (see settle_held), else ''.
-- Counts the chunk as dispatched (once), keeps its items for the message that refers to them,
-- and puts it in the pool as 'queued' (sent again if no worker takes it within the patience).
-- Returns 1 if newly registered, 0 if already known, -1 if the run no longer takes chunks.
local status = redis.call('HGET', KEYS[1], 'status')
if (not status) or status == 'cancelling' or is_final(status) then return -1 end
if status == 'created' then redis.call('HSET', KEYS[1], 'status', 'dispatching') end
local added = redis.call('SADD', KEYS[2], ARGV[2])
if added == 1 then
  if ARGV[5] ~= '' then redis.call('HSET', KEYS[3], ARGV[2], ARGV[5]) end
  local member = 'c:' .. ARGV[2]
  if ARGV[7] == '1' then
    redis.call('HINCRBY', KEYS[1], 'objects_to_delete', tonumber(ARGV[3]))
    redis.call('ZADD', KEYS[4], '+inf', member)
    redis.call('HSET', KEYS[5], member, 'held')
    redis.call('SADD', KEYS[6], ARGV[2])
    touch(tonumber(ARGV[1]), KEYS[6])
  else
    redis.call('HINCRBY', KEYS[1], 'objects_listed', tonumber(ARGV[3]))
    redis.call('HINCRBY', KEYS[1], 'bytes_listed', tonumber(ARGV[4]))
    redis.call('ZADD', KEYS[4], now_ms() + tonumber(ARGV[6]), member)
    redis.call('HSET', KEYS[5], member, 'queued')
  end
end
touch(tonumber(ARGV[1]), KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return added
