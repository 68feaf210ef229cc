-- Removes a gateway's own record (its slot), once the users' and groups'
-- entries it listed are gone.
-- KEYS: gateway known marker, alive key, connections hash, groups set
-- ARGV: forget ('1' = also drop the gateway itself), then the connection ids removed
for i = 2, #ARGV do redis.call('HDEL', KEYS[3], ARGV[i]) end
redis.call('DEL', KEYS[4])
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
end
return 1
