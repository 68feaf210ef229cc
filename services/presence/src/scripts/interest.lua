-- The gateway's record of the groups it hosts members of (its slot); the
-- groups' own sets are written by presence around it.
-- KEYS: gateway known marker, gateway groups set
-- ARGV: added count, then the added group ids, then the removed ones
-- Returns 1 if the gateway was known.
local nadd = tonumber(ARGV[1])
for i = 2, #ARGV do
  if i <= nadd + 1 then
    redis.call('SADD', KEYS[2], ARGV[i])
  else
    redis.call('SREM', KEYS[2], ARGV[i])
  end
end
return redis.call('EXISTS', KEYS[1])
