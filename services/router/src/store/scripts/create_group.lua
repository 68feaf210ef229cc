-- KEYS: epoch, outbox, group, group members, owner's groups, group joined, item...
-- ARGV: epoch, now ms, owner, group id, name, policy, created ms, history, item...
-- Returns {'OK', record} | {'PRECONDITION', ''} | {'EPOCH', current}
local changed = epoch_changed(KEYS[1], ARGV[1])
if changed then return {'EPOCH', changed} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {'PRECONDITION', ''} end
-- The creation is the group's first membership change: version 1.
redis.call('HSET', KEYS[3], 'name', ARGV[5], 'owner', ARGV[3], 'policy', ARGV[6],
  'history', ARGV[8], 'created', ARGV[7], 'mver', 1)
redis.call('HSET', KEYS[4], ARGV[3], 'owner')
redis.call('SADD', KEYS[5], ARGV[4])
local ids, seqs = write_items(read_items(7, 9, 1), ARGV[2], KEYS[2])
redis.call('HSET', KEYS[6], ARGV[3], seqs[1])
return {'OK', ids[1] .. '|' .. ARGV[2]}
