-- A new group's own keys (one slot), once the history store logged its
-- creation (message at seq ARGV[6]); the owner's set of groups is written
-- by the router afterwards.
-- KEYS: group, group members, group joined
-- ARGV: owner, name, policy, created ms, history, seq
-- Returns {'OK', ''} | {'PRECONDITION', ''}
if redis.call('EXISTS', KEYS[1]) == 1 then return {'PRECONDITION', ''} end
-- The creation is the group's first membership change: version 1.
redis.call('HSET', KEYS[1], 'name', ARGV[2], 'owner', ARGV[1], 'policy', ARGV[3],
  'history', ARGV[5], 'created', ARGV[4], 'mver', 1)
redis.call('HSET', KEYS[2], ARGV[1], 'owner')
redis.call('HSET', KEYS[3], ARGV[1], ARGV[6])
return {'OK', ''}
