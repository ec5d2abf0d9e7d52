-- The last ARGV[2] minutes of a queue's history, by the server's clock, oldest
-- first, the current minute last (read-only).
-- KEYS[1] the stats hash (declared so the script runs on the queue's slot; the
-- minute keys are named from ARGV[1], the queue's history prefix)
-- Returns {first minute, {completed, failed, dead_lettered, wait_ms, waited} per
-- minute}, a missing counter as nil.
local t = redis.call('TIME')
local now = math.floor(tonumber(t[1]) / 60)
local n = tonumber(ARGV[2])
local out = {}
for m = now - n + 1, now do
  out[#out + 1] = redis.call('HMGET', ARGV[1] .. m, H.completed, H.failed, H.dead_lettered, H.wait_ms, H.waited)
end
return {now - n + 1, out}
