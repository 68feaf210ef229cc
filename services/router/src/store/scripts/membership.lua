-- KEYS: epoch, outbox, group members, user's groups, group invites, user's invites, item...
-- ARGV: epoch, now ms, op ('join'|'leave'|'role'), user, group id, role name, item...
-- Returns {'OK', record} | {'PRECONDITION', ''} | {'EPOCH', current}
local changed = epoch_changed(KEYS[1], ARGV[1])
if changed then return {'EPOCH', changed} end
local op, user, group, role = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local member = redis.call('HEXISTS', KEYS[3], user) == 1
if (op == 'join') == member then return {'PRECONDITION', ''} end
local items = read_items(7, 7, 1)
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
local ids = write_items(items, ARGV[2], KEYS[2])
return {'OK', ids[1] .. '|' .. ARGV[2]}
