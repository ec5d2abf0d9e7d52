-- Acknowledges finished jobs and records their completion, for a batch of entries.
-- An entry that another consumer already acknowledged is skipped, so a job is
-- counted complete at most once even after a reclaim ran it twice.
-- KEYS[1] done stream, KEYS[2] stats hash, KEYS[3..] lane streams
-- ARGV[1] group, ARGV[2] done stream max length (0 keeps no record)
-- ARGV[3..] groups of 5: lane, entry id, job id, kind, "attempt:duration_ms"
-- Returns the number of entries acknowledged by this call.
local n = 0
local maxlen = tonumber(ARGV[2])
for i = 3, #ARGV, 5 do
  local s = KEYS[tonumber(ARGV[i]) + 3]
  if redis.call('XACK', s, ARGV[1], ARGV[i + 1]) == 1 then
    redis.call('XDEL', s, ARGV[i + 1])
    n = n + 1
    if maxlen > 0 then
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*',
        'id', ARGV[i + 2], 'kind', ARGV[i + 3], 'run', ARGV[i + 4])
    end
  end
end
if n > 0 then
  redis.call('HINCRBY', KEYS[2], 'completed', n)
end
return n
