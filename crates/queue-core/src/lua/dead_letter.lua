-- Moves an entry to the dead-letter stream: acknowledge + delete + XADD dlq, one step.
-- KEYS[1] lane stream, KEYS[2] dlq stream, KEYS[3] stats hash, KEYS[4] optional
-- unique-until-settled key of the job, released if it is still the job's own
-- ARGV[1] group, ARGV[2] consumer ("" skips the ownership check), ARGV[3] entry id,
-- ARGV[4] dlq max length (0 = unbounded), ARGV[5] envelope bytes, ARGV[6] error,
-- ARGV[7] attempts, ARGV[8] lane, ARGV[9] job id, ARGV[10] kind,
-- ARGV[11] the queue's history prefix, ARGV[12] the run's wait in ms, -1 when
-- no run started (an undecodable entry) (history.lua)
-- Returns 1 when dead-lettered, 0 when the entry is no longer ours.
if ARGV[2] ~= '' then
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
  if #p == 0 or p[1][2] ~= ARGV[2] then
    return 0
  end
end
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[3]) == 0 then
  return 0
end
redis.call('XDEL', KEYS[1], ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local maxlen = tonumber(ARGV[4])
local args = {'XADD', KEYS[2]}
if maxlen > 0 then
  args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = maxlen
end
for _, v in ipairs({'*', F.envelope, ARGV[5], F.error, ARGV[6], F.attempts, ARGV[7], F.failed_at, now,
                    F.origin, ARGV[3], F.lane, ARGV[8], F.id, ARGV[9], F.kind, ARGV[10]}) do
  args[#args + 1] = v
end
redis.call(unpack(args))
if KEYS[4] then
  uniq_release(KEYS[4], ARGV[9])
end
redis.call('HINCRBY', KEYS[3], S.failed, 1)
redis.call('HINCRBY', KEYS[3], S.dead_lettered, 1)
history_add(ARGV[11], 0, 1, 1, tonumber(ARGV[12]), 1)
return 1
