-- KEYS: the delivered-cursor hash of each mark. ARGV: user, seq of each mark.
-- Moves each cursor forward only; returns 1 for each that moved, else 0.
local moved = {}
for i, key in ipairs(KEYS) do
  local user, seq = ARGV[2 * i - 1], tonumber(ARGV[2 * i])
  local cur = tonumber(redis.call('HGET', key, user) or '0')
  if seq > cur then
    redis.call('HSET', key, user, seq)
    moved[i] = 1
  else
    moved[i] = 0
  end
end
return moved
