-- A contact leaves, or is removed from, a topic: the forwarding entry goes
-- and the exit is a message in their thread and the topic's timeline.
-- KEYS: epoch, outbox, topic contacts, topic former, timeline seq, timeline, broadcasts, item...
-- ARGV: epoch, now ms, contact, former state ('left'|'removed'), item...
-- Returns {'OK', record} | {'PRECONDITION', ''} | {'EPOCH', current}
local changed = epoch_changed(KEYS[1], ARGV[1])
if changed then return {'EPOCH', changed} end
if redis.call('HDEL', KEYS[3], ARGV[3]) == 0 then return {'PRECONDITION', ''} end
redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
local ids = write_items(read_items(8, 5, 1), ARGV[2], KEYS[2])
local timeline_seq = write_timeline(KEYS[5], KEYS[6], KEYS[7], '', ids, '')
return {'OK', ids[1] .. '|' .. ARGV[2] .. '|' .. timeline_seq .. '|'}
