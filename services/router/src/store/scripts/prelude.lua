-- Shared by every script that appends messages. Keys come in as KEYS,
-- built by switchboard_shared::keys; no key is ever built here.
--
-- One item (one message of one conversation, stored by the history store,
-- which assigned its seq and judged its sender's admission) takes 2 + n KEYS:
--   read-cursor hash, sent-cursor hash, n conversation-list zsets
-- and 5 ARGV:
--   conversation id, reader whose cursors move to the message ('' = none),
--   seq, '1' if the conversation keeps sent cursors (topic threads) else '', n

local function read_items(k, a, n)
  local items = {}
  for i = 1, n do
    local item = {
      reads_key = KEYS[k], sent_key = KEYS[k + 1],
      conv = ARGV[a], reader = ARGV[a + 1], seq = tonumber(ARGV[a + 2]),
      keeps_sent = ARGV[a + 3] == '1', idx = {},
    }
    local nidx = tonumber(ARGV[a + 4])
    for j = 1, nidx do item.idx[j] = KEYS[k + 1 + j] end
    k = k + 2 + nidx
    a = a + 5
    items[i] = item
  end
  return items
end

-- ZADD of many (score, member) pairs, in commands of at most 500 pairs
-- (Lua's unpack has a limit).
local function zadd_all(key, pairs)
  for from = 1, #pairs, 1000 do
    redis.call('ZADD', key, unpack(pairs, from, math.min(from + 999, #pairs)))
  end
end

-- nil while the membership version of a group or topic thread (the fence
-- its sends are judged by, docs/STORAGE.md) is `expected`, else the version
-- it has moved to. Kept in the group's or topic's hash.
local function version_moved(hash_key, field, expected)
  local current = redis.call('HGET', hash_key, field) or '0'
  if current ~= expected then return current end
  return nil
end

-- Records each item the history store stored: moves the sender's read
-- cursor (and sent cursor, where kept), touches conversation lists, and records it in the outbox
-- until a router confirms it was handed to the bus. Returns the message ids
-- and the seqs. One ZADD per list rather than per item: a topic send
-- touches the owner's list and the outbox once each, not once per contact.
local function write_items(items, now, outbox_key)
  local ids, seqs, lists, order, outbox = {}, {}, {}, {}, {}
  for i, item in ipairs(items) do
    local seq = item.seq
    if item.reader ~= '' then
      -- Recorded late (a retry found it in the log), it may be older than
      -- what the sender has read or sent since: cursors only move forward.
      local cursors = {item.reads_key}
      if item.keeps_sent then cursors[2] = item.sent_key end
      for _, key in ipairs(cursors) do
        if seq > tonumber(redis.call('HGET', key, item.reader) or '0') then
          redis.call('HSET', key, item.reader, seq)
        end
      end
    end
    for _, key in ipairs(item.idx) do
      local list = lists[key]
      if not list then
        list = {}
        lists[key] = list
        order[#order + 1] = key
      end
      list[#list + 1] = now
      list[#list + 1] = item.conv
    end
    local id = item.conv .. '#' .. seq
    outbox[#outbox + 1] = now
    outbox[#outbox + 1] = id
    ids[i] = id
    seqs[i] = seq
  end
  for _, key in ipairs(order) do zadd_all(key, lists[key]) end
  if #outbox > 0 then zadd_all(outbox_key, outbox) end
  return ids, seqs
end

-- nil when the store's epoch is the expected one, else the current epoch
-- ('' if it is gone: the data was lost).
local function epoch_changed(epoch_key, expected)
  local current = redis.call('GET', epoch_key)
  if current ~= expected then return current or '' end
  return nil
end

-- Adds one entry for the written messages to a topic's merged timeline
-- (and, for a broadcast, remembers its copies). `forwarded_from` (what a
-- resent broadcast was copied from) lives here, in the owner's timeline,
-- never in a contact's copy. Returns the entry's seq.
local function write_timeline(seq_key, log_key, broadcasts_key, broadcast_id, ids, forwarded_from)
  local seq = redis.call('INCR', seq_key)
  local copies = table.concat(ids, ' ')
  redis.call('XADD', log_key, seq .. '-0', 'e', broadcast_id .. '|' .. copies .. '|' .. forwarded_from)
  if broadcast_id ~= '' then redis.call('HSET', broadcasts_key, broadcast_id, copies) end
  return seq
end
