-- Binds contacts to a topic, up to its cap; nobody to a deleted topic.
-- KEYS: topic hash, topic contacts, topic former, then one bound-topics set per contact
-- ARGV: topic id, cap, contacts...
-- Returns {'DELETED'} or one word per contact: 'added' | 'already' | 'full'
if redis.call('HEXISTS', KEYS[1], 'deleted') == 1 then return {'DELETED'} end
local results = {}
for i = 3, #ARGV do
  local contact = ARGV[i]
  if redis.call('HEXISTS', KEYS[2], contact) == 1 then
    results[i - 2] = 'already'
  elseif redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[2]) then
    results[i - 2] = 'full'
  else
    redis.call('HSET', KEYS[2], contact, 'bound')
    redis.call('HDEL', KEYS[3], contact)
    redis.call('SADD', KEYS[i + 1], ARGV[1])
    results[i - 2] = 'added'
  end
end
return results
