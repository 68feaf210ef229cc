-- KEYS: user
-- ARGV: password hash, display name, created ms
-- Returns 1 if created, 0 if the id was taken.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'pw', ARGV[1], 'name', ARGV[2], 'created', ARGV[3])
return 1
