-- Removes what one gateway registered.
-- KEYS: gateways set, alive key, gateway connections hash, gateway groups set,
--       online count, then n user hashes (one per connection), then m group sets
-- ARGV: gateway, n, m, forget ('1' = also drop the gateway itself),
--       then n connection ids, then n user ids
-- Returns the users whose last connection this removed.
local gw, n, m = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local offline = {}
for i = 1, n do
  local conn, user_key, user = ARGV[4 + i], KEYS[5 + i], ARGV[4 + n + i]
  if redis.call('HDEL', KEYS[3], conn) == 1 then
    redis.call('HDEL', user_key, conn)
    if redis.call('HLEN', user_key) == 0 then
      table.insert(offline, user)
      redis.call('DECR', KEYS[5])
    end
  end
end
for j = 1, m do redis.call('SREM', KEYS[5 + n + j], gw) end
redis.call('DEL', KEYS[4])
if ARGV[4] == '1' then
  redis.call('SREM', KEYS[1], gw)
  redis.call('DEL', KEYS[2])
  redis.call('DEL', KEYS[3])
end
return offline
