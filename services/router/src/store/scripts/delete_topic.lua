-- Deletes a topic: marks it deleted and unbinds everyone, in one step (a
-- contact bound concurrently is either unbound here or refused by bind.lua).
-- KEYS: topic hash, topic contacts, topic former
-- Returns the contacts that were bound.
redis.call('HSET', KEYS[1], 'deleted', 1)
local bound = redis.call('HKEYS', KEYS[2])
for _, contact in ipairs(bound) do
  redis.call('HSET', KEYS[3], contact, 'removed')
end
redis.call('DEL', KEYS[2])
return bound
