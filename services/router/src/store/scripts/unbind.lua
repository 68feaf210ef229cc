-- A contact leaves, or is removed from, a topic: the forwarding entry goes
-- and the exit is a message in their thread and the topic's timeline.
-- KEYS: epoch, outbox, topic contacts, topic former, timeline seq, timeline, broadcasts,
--       topic, item...
-- ARGV: epoch, now ms, contact, former state ('left'|'removed'),
--       membership version the change expects (the one before it), item...
-- Returns {'OK', record} | {'PRECONDITION', ''} | {'STALE', version} | {'EPOCH', current}
-- Raises the membership version of the contact's thread.
local changed = epoch_changed(KEYS[1], ARGV[1])
if changed then return {'EPOCH', changed} end
local moved = version_moved(KEYS[8], 'mver:' .. ARGV[3], ARGV[5])
if moved then return {'STALE', moved} end
if redis.call('HDEL', KEYS[3], ARGV[3]) == 0 then
  -- The unbinding is in the log: one that changes nothing here still uses
  -- up its version.
  redis.call('HINCRBY', KEYS[8], 'mver:' .. ARGV[3], 1)
  return {'PRECONDITION', ''}
end
redis.call('HINCRBY', KEYS[8], 'mver:' .. ARGV[3], 1)
redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
local ids = write_items(read_items(9, 6, 1), ARGV[2], KEYS[2])
local timeline_seq = write_timeline(KEYS[5], KEYS[6], KEYS[7], '', ids, '')
return {'OK', ids[1] .. '|' .. ARGV[2] .. '|' .. timeline_seq .. '|'}
