-- KEYS: epoch, outbox, group, group members, owner's groups, item...
-- ARGV: epoch, now ms, owner, group id, name, policy, created ms, item...
-- Returns {'OK', record} | {'PRECONDITION', ''} | {'EPOCH', current}
local changed = epoch_changed(KEYS[1], ARGV[1])
if changed then return {'EPOCH', changed} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {'PRECONDITION', ''} end
redis.call('HSET', KEYS[3], 'name', ARGV[5], 'owner', ARGV[3], 'policy', ARGV[6], 'created', ARGV[7])
redis.call('HSET', KEYS[4], ARGV[3], 'owner')
redis.call('SADD', KEYS[5], ARGV[4])
local ids = write_items(read_items(6, 8, 1), ARGV[2], KEYS[2])
return {'OK', ids[1] .. '|' .. ARGV[2]}
