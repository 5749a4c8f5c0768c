-- Shared by every script that can end a run: the run is over when the listing is finished and
-- every dispatched chunk is done. Server time (TIME) keeps timestamps consistent across hosts.
-- The end is also published on a channel named like the run hash (RunKeys.ended_channel), so a
-- waiter learns of it at once instead of at its next poll.
local function now()
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end
local function is_final(status)
  return status == 'succeeded' or status == 'failed' or status == 'cancelled'
end
local function maybe_finalize(run, dispatched, done)
  local h = redis.call('HMGET', run, 'status', 'listing_done', 'max_failures', 'objects_failed',
                       'deletes_refused')
  local status = h[1]
  if (not status) or is_final(status) or h[2] ~= '1' then return status end
  if redis.call('SCARD', dispatched) ~= redis.call('SCARD', done) then return status end
  local final = 'succeeded'
  local limit = tonumber(h[3] or '-1')
  if status == 'cancelling' then
    final = 'cancelled'
  elseif (limit >= 0 and tonumber(h[4] or '0') > limit) or h[5] then
    final = 'failed'
  end
  redis.call('HSET', run, 'status', final, 'finished_at', now())
  redis.call('PUBLISH', run, final)
  return final
end
local function touch(ttl, ...)
  for _, key in ipairs({...}) do redis.call('EXPIRE', key, ttl) end
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Work that is done leaves the pool: its lease, holder, delivery count and resend message.
local function drop_lease(leases, holders, deliveries, resend, member)
  redis.call('ZREM', leases, member)
  redis.call('HDEL', holders, member)
  redis.call('HDEL', deliveries, member)
  if resend then redis.call('HDEL', resend, member) end
end
-- The delete phase of a sync (--delete): its chunks are registered 'held' (never sent, never
-- due) while the copies run. Once the listing is finished and every other chunk is done they
-- are released, due at `due` (whoever released them sends them; the reaper, if they are not
-- taken by then), or, when the run is cancelling, over its failure limit or refused its
-- deletes (max_delete), withheld: they leave the run uncounted and nothing is deleted.
-- p = {held set, chunk items, leases, holders}. Returns the released chunk ids.
local function withhold_held(run, dispatched, p)
  for _, chunk in ipairs(redis.call('SMEMBERS', p[1])) do
    redis.call('SREM', dispatched, chunk)
    redis.call('HDEL', p[2], chunk)
    redis.call('ZREM', p[3], 'c:' .. chunk)
    redis.call('HDEL', p[4], 'c:' .. chunk)
  end
  redis.call('DEL', p[1])
  redis.call('HSET', run, 'deletes_withheld', '1')
end
local function settle_held(run, dispatched, done, p, due)
  local held = redis.call('SCARD', p[1])
  if held == 0 then return {} end
  local h = redis.call('HMGET', run, 'status', 'listing_done', 'max_failures', 'objects_failed',
                       'deletes_refused')
  if (not h[1]) or is_final(h[1]) or h[2] ~= '1' then return {} end
  if redis.call('SCARD', dispatched) - redis.call('SCARD', done) ~= held then return {} end
  local limit = tonumber(h[3] or '-1')
  if h[1] == 'cancelling' or h[5] or (limit >= 0 and tonumber(h[4] or '0') > limit) then
    withhold_held(run, dispatched, p)
    return {}
  end
  local released = redis.call('SMEMBERS', p[1])
  for _, chunk in ipairs(released) do
    redis.call('ZADD', p[3], due, 'c:' .. chunk)
    redis.call('HSET', p[4], 'c:' .. chunk, 'queued')
  end
  redis.call('DEL', p[1])
  redis.call('HSET', run, 'deleting_at', now())
  return released
end
