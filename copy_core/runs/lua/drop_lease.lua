-- (run with finalize.lua before it)
-- KEYS: leases, holders, deliveries, resend. ARGV: member, holder ('' for whoever holds it).
-- Work other than a chunk is over (a batch copied, the listing done): it leaves the pool.
if ARGV[2] ~= '' and redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
drop_lease(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1])
return 1
