-- KEYS: read-cursor hash. ARGV: user, seq. Moves the cursor forward only.
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local seq = tonumber(ARGV[2])
if seq > cur then
  redis.call('HSET', KEYS[1], ARGV[1], seq)
  return seq
end
return cur
