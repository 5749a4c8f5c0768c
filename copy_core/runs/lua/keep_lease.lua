-- KEYS: lister. ARGV: token, ttl in ms. Extends the lease if ``token`` holds it; 1 if it did.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
