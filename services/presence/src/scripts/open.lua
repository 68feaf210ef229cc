-- KEYS: gateways set, gateway alive key, gateway connections hash, user hash, online count
-- ARGV: gateway, connection, user, '<gateway> <device>', ttl ms
-- Returns {gateway was known (1/0), user came online (1/0)}
local known = redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[5])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
local before = redis.call('HLEN', KEYS[4])
redis.call('HSET', KEYS[4], ARGV[2], ARGV[4])
local came_online = before == 0 and redis.call('HLEN', KEYS[4]) == 1
if came_online then redis.call('INCR', KEYS[5]) end
return {known and 1 or 0, came_online and 1 or 0}
