-- Extends the running leases this replica still holds (XX: a lease that expired
-- or was released is not brought back). Server clock, as in limit_admit.lua.
-- KEYS[1] running leases; ARGV[1] lease ms, ARGV[2..] members
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[i])
end
if #ARGV > 1 then
  redis.call('PEXPIRE', KEYS[1], lease)
end
return 0
