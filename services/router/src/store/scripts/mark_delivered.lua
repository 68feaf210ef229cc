-- KEYS: delivered-cursor hash. ARGV: user, seq.
-- Moves the cursor forward only; returns 1 if it moved.
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > cur then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
