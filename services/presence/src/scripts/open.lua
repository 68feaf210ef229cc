-- A connection opens on a gateway: the gateway's record of it (its slot).
-- KEYS: gateway known marker, gateway alive key, gateway connections hash
-- ARGV: connection, user, ttl ms
-- Returns 1 if the gateway was known (its state is here), else 0.
local known = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], '1')
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return known
