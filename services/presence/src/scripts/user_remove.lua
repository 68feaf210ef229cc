-- A user's connection goes (the user's slot).
-- KEYS: user hash. ARGV: connection
-- Returns 1 if that was the user's last connection anywhere.
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 and redis.call('HLEN', KEYS[1]) == 0 then
  return 1
end
return 0
