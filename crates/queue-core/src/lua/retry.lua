-- Schedules the next attempt of a failed job: acknowledge + delete the entry and add
-- the new envelope to the delayed set, in one step, only while this consumer still
-- owns the entry (if it was reclaimed, the new owner decides its fate). A job
-- holding a unique key has the key point at its delayed member (unique.lua).
-- KEYS[1] lane stream, KEYS[2] delayed set, KEYS[3] stats hash, KEYS[4] optional
-- unique key of the job
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] entry id, ARGV[4] backoff ms,
-- ARGV[5] delayed member (lane digit + envelope with attempt + 1), ARGV[6] job id,
-- ARGV[7] the queue's history prefix, ARGV[8] the run's wait in ms (history.lua)
-- Returns 1 when scheduled, 0 when the entry is no longer ours.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then
  return 0
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
local t = redis.call('TIME')
local due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[4])
redis.call('ZADD', KEYS[2], due, ARGV[5])
if KEYS[4] then
  uniq_move(KEYS[4], ARGV[6], uniq_in_delayed(ARGV[6], due))
end
redis.call('HINCRBY', KEYS[3], S.failed, 1)
redis.call('HINCRBY', KEYS[3], S.retried, 1)
history_add(ARGV[7], 0, 1, 0, tonumber(ARGV[8]), 1)
return 1
