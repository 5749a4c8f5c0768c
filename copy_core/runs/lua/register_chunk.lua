-- (run with finalize.lua before it)
-- KEYS: run, dispatched. ARGV: ttl, chunk_id, n_items, n_bytes.
-- Returns 1 if newly registered, 0 if already known, -1 if the run no longer takes chunks.
local status = redis.call('HGET', KEYS[1], 'status')
if (not status) or status == 'cancelling' or is_final(status) then return -1 end
if status == 'created' then redis.call('HSET', KEYS[1], 'status', 'dispatching') end
local added = redis.call('SADD', KEYS[2], ARGV[2])
if added == 1 then
  redis.call('HINCRBY', KEYS[1], 'objects_listed', tonumber(ARGV[3]))
  redis.call('HINCRBY', KEYS[1], 'bytes_listed', tonumber(ARGV[4]))
end
touch(tonumber(ARGV[1]), KEYS[1], KEYS[2])
return added
