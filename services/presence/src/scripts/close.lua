-- KEYS: gateway connections hash, user hash, online count
-- ARGV: connection
-- Returns 1 if that was the user's last connection anywhere.
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if removed == 1 and redis.call('HLEN', KEYS[2]) == 0 then
  redis.call('DECR', KEYS[3])
  return 1
end
return 0
