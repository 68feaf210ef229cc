-- Binds contacts to a topic, up to its cap.
-- KEYS: topic contacts, topic former, then one bound-topics set per contact
-- ARGV: topic id, cap, contacts...
-- Returns one word per contact: 'added' | 'already' | 'full'
local results = {}
for i = 3, #ARGV do
  local contact = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], contact) == 1 then
    results[i - 2] = 'already'
  elseif redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[2]) then
    results[i - 2] = 'full'
  else
    redis.call('HSET', KEYS[1], contact, 'bound')
    redis.call('HDEL', KEYS[2], contact)
    redis.call('SADD', KEYS[i], ARGV[1])
    results[i - 2] = 'added'
  end
end
return results
