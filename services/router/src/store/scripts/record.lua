-- Records a stored send: its retry record and, for a topic send, its
-- timeline entry, in one step (both in the topic's slot then, so a retry
-- racing the first attempt never adds a second entry). Runs after the
-- history store stored the messages and after the router wrote their
-- cursors, conversation lists and outbox entries: a record here means all
-- of that is done.
-- KEYS: retry record, then (with a timeline) timeline seq, timeline, broadcasts
-- ARGV: now ms, retry record ttl s, has record ('1'/'0'), has timeline ('1'/'0'),
--       broadcast id, forwarded from, message ids (space-separated), memo
-- Returns {'OK', record} | {'DUP', record}
-- where record is ids|sent at|timeline seq|memo.
local has_record = ARGV[3] == '1'
if has_record then
  local prior = redis.call('GET', KEYS[1])
  if prior then return {'DUP', prior} end
end
local timeline_seq = 0
if ARGV[4] == '1' then
  timeline_seq = write_timeline(KEYS[2], KEYS[3], KEYS[4], ARGV[5], ARGV[7], ARGV[6])
end
local record = ARGV[7] .. '|' .. ARGV[1] .. '|' .. timeline_seq .. '|' .. ARGV[8]
if has_record then redis.call('SET', KEYS[1], record, 'EX', ARGV[2]) end
return {'OK', record}
