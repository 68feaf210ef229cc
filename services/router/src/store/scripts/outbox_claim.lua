-- KEYS: outbox. ARGV: older than ms, now ms, limit.
-- Claims stale entries by re-stamping them, so one router takes each.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
