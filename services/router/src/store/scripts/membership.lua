-- KEYS: epoch, outbox, group members, user's groups, group invites, user's invites,
--       group joined, group left, group, item...
-- ARGV: epoch, now ms, op ('join'|'leave'|'role'), user, group id, role name,
--       membership version the change expects (the one before it), item...
-- Returns {'OK', record} | {'PRECONDITION', ''} | {'STALE', version} | {'EPOCH', current}
-- The seq of a join is kept (history from the join reads from there), and of
-- a leave or removal too (a former member reads up to and including it).
-- Every change raises the group's membership version.
local changed = epoch_changed(KEYS[1], ARGV[1])
if changed then return {'EPOCH', changed} end
local op, user, group, role = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local moved = version_moved(KEYS[9], 'mver', ARGV[7])
if moved then return {'STALE', moved} end
local member = redis.call('HEXISTS', KEYS[3], user) == 1
if (op == 'join') == member then
  -- The change is in the log: one that changes nothing here (a repeated
  -- join) still uses up its version.
  redis.call('HINCRBY', KEYS[9], 'mver', 1)
  return {'PRECONDITION', ''}
end
redis.call('HINCRBY', KEYS[9], 'mver', 1)
local items = read_items(10, 8, 1)
if op == 'join' then
  redis.call('HSET', KEYS[3], user, role)
  redis.call('SADD', KEYS[4], group)
  redis.call('HDEL', KEYS[5], user)
  redis.call('SREM', KEYS[6], group)
elseif op == 'leave' then
  redis.call('HDEL', KEYS[3], user)
  redis.call('SREM', KEYS[4], group)
else
  redis.call('HSET', KEYS[3], user, role)
end
local ids, seqs = write_items(items, ARGV[2], KEYS[2])
if op == 'join' then
  redis.call('HSET', KEYS[7], user, seqs[1])
  redis.call('HDEL', KEYS[8], user)
elseif op == 'leave' then
  redis.call('HSET', KEYS[8], user, seqs[1])
end
return {'OK', ids[1] .. '|' .. ARGV[2]}
