-- KEYS: lock. ARGV: instance, ttl ms. Returns 1 if the caller holds the lock.
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
