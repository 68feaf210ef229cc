-- A contact leaves, or is removed from, a topic: the forwarding entry goes
-- and the exit (logged by the history store as message ARGV[4]) joins the
-- topic's timeline. Only the topic's keys (one slot).
-- KEYS: topic contacts, topic former, timeline seq, timeline, broadcasts, topic
-- ARGV: contact, former state ('left'|'removed'),
--       membership version the change expects (the one before it), message id
-- Returns {'OK', timeline seq} | {'PRECONDITION', ''} | {'STALE', version}
-- Raises the membership version of the contact's thread.
local moved = version_moved(KEYS[6], 'mver:' .. ARGV[1], ARGV[3])
if moved then return {'STALE', moved} end
redis.call('HINCRBY', KEYS[6], 'mver:' .. ARGV[1], 1)
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  -- The unbinding is in the log: one that changes nothing here still uses
  -- up its version.
  return {'PRECONDITION', ''}
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return {'OK', tostring(write_timeline(KEYS[3], KEYS[4], KEYS[5], '', ARGV[4], ''))}
