-- Records a stored topic send: its retry record and its timeline entry, in
-- one step in the topic's slot, so a retry racing the first attempt never
-- adds a second entry. Runs after the history store stored the messages
-- and after the router wrote their cursors, conversation lists and outbox
-- entries: a record here means all of that is done. (A direct or group
-- send's record needs no script: one SET NX GET, `RedisStore::run_append`.)
-- KEYS: retry record (any key of the topic's slot when there is none),
--       timeline seq, timeline, broadcasts
-- ARGV: now ms, retry record ttl s, has record ('1'/'0'), broadcast id,
--       forwarded from, message ids (space-separated), memo
-- Returns {'OK', record} | {'DUP', record}
-- where record is ids|sent at|timeline seq|memo.
local has_record = ARGV[3] == '1'
if has_record then
  local prior = redis.call('GET', KEYS[1])
  if prior then return {'DUP', prior} end
end
local timeline_seq = write_timeline(KEYS[2], KEYS[3], KEYS[4], ARGV[4], ARGV[6], ARGV[5])
local record = ARGV[6] .. '|' .. ARGV[1] .. '|' .. timeline_seq .. '|' .. ARGV[7]
if has_record then redis.call('SET', KEYS[1], record, 'EX', ARGV[2]) end
return {'OK', record}
