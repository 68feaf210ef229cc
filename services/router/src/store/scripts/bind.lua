-- Binds contacts to a topic, up to its cap; nobody to a deleted topic. Only
-- the topic's keys (one slot): each contact's set of topic dialogs is
-- written by the router afterwards.
-- KEYS: topic hash, topic contacts, topic former
-- ARGV: cap, contacts...
-- Returns {'DELETED'} or one word per contact: 'added' | 'already' | 'full'
if redis.call('HEXISTS', KEYS[1], 'deleted') == 1 then return {'DELETED'} end
local results = {}
for i = 2, #ARGV do
  local contact = ARGV[i]
  if redis.call('HEXISTS', KEYS[2], contact) == 1 then
    results[i - 1] = 'already'
  elseif redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[1]) then
    results[i - 1] = 'full'
  else
    redis.call('HSET', KEYS[2], contact, 'bound')
    redis.call('HDEL', KEYS[3], contact)
    results[i - 1] = 'added'
  end
end
return results
