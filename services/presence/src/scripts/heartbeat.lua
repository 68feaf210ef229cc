-- KEYS: gateway known marker, gateway alive key. ARGV: ttl ms.
-- Returns 1 if the gateway is known (its state is here), else 0: it must resync.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return 1
