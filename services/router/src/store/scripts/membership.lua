-- Applies a group membership change the history store logged (its message
-- is at seq ARGV[5]), if the group's membership version is still the one
-- before it. Only the group's keys (one slot); the member's own set of
-- groups and invites is brought in line by the router afterwards.
-- KEYS: group members, group invites, group joined, group left, group
-- ARGV: op ('join'|'leave'|'role'|'owner'), user, role name,
--       membership version the change expects (the one before it), seq
-- Returns {'OK', ''} | {'PRECONDITION', ''} | {'STALE', version}
-- The seq of a join is kept (history from the join reads from there), and of
-- a leave or removal too (a former member reads up to and including it).
-- Every change raises the group's membership version.
local op, user, role, seq = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
local moved = version_moved(KEYS[5], 'mver', ARGV[4])
if moved then return {'STALE', moved} end
redis.call('HINCRBY', KEYS[5], 'mver', 1)
-- A deleted group (a tombstone) changes no more.
if redis.call('HEXISTS', KEYS[5], 'deleted_members') == 1 then
  return {'PRECONDITION', ''}
end
local member = redis.call('HEXISTS', KEYS[1], user) == 1
if (op == 'join') == member then
  -- The change is in the log: one that changes nothing here (a repeated
  -- join) still uses up its version.
  return {'PRECONDITION', ''}
end
if op == 'join' then
  redis.call('HSET', KEYS[1], user, role)
  redis.call('HDEL', KEYS[2], user)
  redis.call('HSET', KEYS[3], user, seq)
  redis.call('HDEL', KEYS[4], user)
elseif op == 'leave' then
  redis.call('HDEL', KEYS[1], user)
  redis.call('HSET', KEYS[4], user, seq)
elseif op == 'owner' then
  -- The owner before, if still a member, stays as an admin.
  local before = redis.call('HGET', KEYS[5], 'owner')
  if before and before ~= user and redis.call('HEXISTS', KEYS[1], before) == 1 then
    redis.call('HSET', KEYS[1], before, 'admin')
  end
  redis.call('HSET', KEYS[1], user, 'owner')
  redis.call('HSET', KEYS[5], 'owner', user)
else
  redis.call('HSET', KEYS[1], user, role)
end
return {'OK', ''}
