-- KEYS: gateways set, gateway groups set, then one group set per added group, then per removed group
-- ARGV: gateway, added count, removed count, then the added group ids, then the removed ones
-- Returns 1 if the gateway was known.
local gw = ARGV[1]
local nadd, nrem = tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, nadd do
  redis.call('SADD', KEYS[2 + i], gw)
  redis.call('SADD', KEYS[2], ARGV[3 + i])
end
for i = 1, nrem do
  redis.call('SREM', KEYS[2 + nadd + i], gw)
  redis.call('SREM', KEYS[2], ARGV[3 + nadd + i])
end
return redis.call('SISMEMBER', KEYS[1], gw)
