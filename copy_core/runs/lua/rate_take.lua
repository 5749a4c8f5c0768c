-- KEYS: rate. ARGV: requests wanted, bytes wanted, ttl.
-- The token buckets of a run's caps, shared by every worker of the pool. A bucket holds at
-- most 5% of its cap (at least 1) and refills at 90% of it: whatever the timing, no window of
-- one second issues more than the cap, even counting that a worker spends the tokens it was
-- given within 50 ms (caps under 20/s hold on average, with at most one request more in a
-- second). Bytes may go into debt by one request's worth, so a large object is never held
-- back for good. Returns {requests granted, bytes granted, ms to wait before asking again}.
local h = redis.call('HMGET', KEYS[1], 'rps', 'bps', 'tokens', 'byte_tokens', 'at',
                     'starved_at', 'starved_ms')
local rps, bps = tonumber(h[1] or ''), tonumber(h[2] or '')
if rps and rps <= 0 then rps = nil end
if bps and bps <= 0 then bps = nil end
local want_r, want_b = tonumber(ARGV[1]), tonumber(ARGV[2])
if not rps and not bps then return {want_r, want_b, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local elapsed = math.max(now - (tonumber(h[5] or '') or now), 0) / 1000
local function refill(cap, current)
  local burst = math.max(1, cap * 0.05)
  local rate = math.max(cap - 2 * burst, cap * 0.5)
  return math.min(burst, (current or burst) + elapsed * rate), rate
end
local tokens, rate_r, byte_tokens, rate_b = 0, 1, 0, 1
local bytes_ok = true
if bps then
  byte_tokens, rate_b = refill(bps, tonumber(h[4] or ''))
  bytes_ok = want_b == 0 or byte_tokens > 0
end
local grant_r = want_r
if rps then
  tokens, rate_r = refill(rps, tonumber(h[3] or ''))
  grant_r = math.min(want_r, math.floor(tokens))
end
if not bytes_ok then grant_r = 0 end
local grant_b = 0
if bytes_ok and (grant_r > 0 or want_r == 0) then grant_b = want_b end
if rps then tokens = tokens - grant_r end
if bps then byte_tokens = byte_tokens - grant_b end
local wait = 0
if grant_r < want_r or grant_b < want_b then
  if not bytes_ok then
    wait = (1 - byte_tokens) / rate_b * 1000
  else
    wait = (1 - tokens) / rate_r * 1000
  end
  -- Wall time during which the run wanted more than its caps gave (for its summary).
  local last = tonumber(h[6] or '')
  local starved = tonumber(h[7] or '0')
  if last and now - last < 1000 then starved = starved + (now - last) end
  redis.call('HSET', KEYS[1], 'starved_at', tostring(now), 'starved_ms', tostring(starved))
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'byte_tokens', tostring(byte_tokens),
           'at', tostring(now))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {grant_r, grant_b, math.max(math.ceil(wait), 1)}
