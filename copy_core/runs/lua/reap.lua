-- (run with finalize.lua before it)
-- KEYS: run, done, leases, holders, deliveries, resend. ARGV: queue patience (ms), limit, ttl.
-- Returns work whose lease expired (its worker died, or it was returned for a retry, or its
-- message was never taken) to the queue: each such member is claimed 'queued' for another
-- patience, so one caller sends it again, and returned as {member, resend message or false}.
-- Work of a run that is over, or a chunk already done, just leaves the pool.
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local status = redis.call('HGET', KEYS[1], 'status')
local out = {}
for _, member in ipairs(due) do
  local chunk = string.match(member, '^c:(.*)$')
  if (not status) or is_final(status)
      or (chunk and redis.call('SISMEMBER', KEYS[2], chunk) == 1) then
    drop_lease(KEYS[3], KEYS[4], KEYS[5], KEYS[6], member)
  else
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[1]), member)
    redis.call('HSET', KEYS[4], member, 'queued')
    out[#out + 1] = member
    out[#out + 1] = redis.call('HGET', KEYS[6], member) or false
  end
end
if #due > 0 then touch(tonumber(ARGV[3]), KEYS[3], KEYS[4]) end
return out
