-- KEYS: epoch, idempotency key, outbox, timeline seq, timeline, broadcasts, items...
--       (the three timeline keys are only used with a timeline)
-- ARGV: epoch, now ms, idempotency ttl s, has idempotency ('1'/'0'), item count,
--       has timeline ('1'/'0'), broadcast id, forwarded from, memo, items...
-- Returns {'OK', record} | {'DUP', record} | {'EPOCH', current}
-- where record is the idempotency record: ids|sent at|timeline seq|memo.
local changed = epoch_changed(KEYS[1], ARGV[1])
if changed then return {'EPOCH', changed} end
local has_idem = ARGV[4] == '1'
if has_idem then
  local prior = redis.call('GET', KEYS[2])
  if prior then return {'DUP', prior} end
end
local items = read_items(7, 10, tonumber(ARGV[5]))
local ids = write_items(items, ARGV[2], KEYS[3])
local timeline_seq = 0
if ARGV[6] == '1' then
  timeline_seq = write_timeline(KEYS[4], KEYS[5], KEYS[6], ARGV[7], ids, ARGV[8])
end
local record = table.concat(ids, ' ') .. '|' .. ARGV[2] .. '|' .. timeline_seq .. '|' .. ARGV[9]
if has_idem then redis.call('SET', KEYS[2], record, 'EX', ARGV[3]) end
return {'OK', record}
