-- KEYS: topic contacts hash. ARGV: contact, binding state.
-- Sets the state only where the contact is bound: one who left stays out.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
