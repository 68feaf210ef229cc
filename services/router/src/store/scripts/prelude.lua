-- Shared by the scripts that write a topic's timeline. Keys come in as KEYS,
-- built by switchboard_shared::keys; no key is ever built here. Every
-- script touches the keys of one hash slot (docs/ARCHITECTURE.md, "Redis
-- keys"): what spans slots (cursors, conversation lists, the outbox) is
-- written by the router as separate, idempotent commands.

-- nil while the membership version of a group or topic thread (the fence
-- its sends are judged by, docs/STORAGE.md) is `expected`, else the version
-- it has moved to. Kept in the group's or topic's hash.
local function version_moved(hash_key, field, expected)
  local current = redis.call('HGET', hash_key, field) or '0'
  if current ~= expected then return current end
  return nil
end

-- Adds one entry for the written messages to a topic's merged timeline
-- (and, for a broadcast, remembers its copies). `forwarded_from` (what a
-- resent broadcast was copied from) lives here, in the owner's timeline,
-- never in a contact's copy. Returns the entry's seq.
local function write_timeline(seq_key, log_key, broadcasts_key, broadcast_id, copies, forwarded_from)
  local seq = redis.call('INCR', seq_key)
  redis.call('XADD', log_key, seq .. '-0', 'e', broadcast_id .. '|' .. copies .. '|' .. forwarded_from)
  if broadcast_id ~= '' then redis.call('HSET', broadcasts_key, broadcast_id, copies) end
  return seq
end
