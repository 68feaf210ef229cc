-- KEYS: gateways set, gateway alive key. ARGV: gateway, ttl ms.
-- Returns 1 if the gateway is known (its state is here), else 0: it must resync.
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 1
