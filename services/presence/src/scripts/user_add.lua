-- A user's connection is recorded where routers look it up (the user's slot).
-- KEYS: user hash. ARGV: connection, '<gateway> <device>'
-- Returns 1 if this made the user online (their first connection anywhere).
local added = redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if added == 1 and redis.call('HLEN', KEYS[1]) == 1 then return 1 end
return 0
