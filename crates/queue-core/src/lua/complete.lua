-- Acknowledges finished jobs of one lane and records their completion, for a batch.
-- Each entry gets its own XACK: one that another consumer already acknowledged
-- (after a reclaim ran it twice) is skipped, so a job is counted complete at most
-- once. The acknowledged entries are then deleted with one XDEL, and the batch is
-- recorded as one entry of the done stream (one `j` field per job). The stream
-- keeps the last N completions (between N and 1.5 N, plus a batch), not N records:
-- the stats hash counts the completions it holds, and whole records are dropped
-- oldest first, once 1.5 N are held, while at least N remain. A job that
-- holds a unique-until-settled key releases it here, if the key is still its own.
-- KEYS[1] done stream, KEYS[2] stats hash, KEYS[3] lane stream, KEYS[4] done index
-- (a list of "record id, jobs in it", oldest first), KEYS[5..] unique keys
-- The batch is counted in the current minute's history (history.lua) with the
-- waits of its runs.
-- ARGV[1] group, ARGV[2] completions the done stream keeps (0 keeps none),
-- ARGV[3] the queue's history prefix, ARGV[4] the runs' waits in ms, summed,
-- ARGV[5] runs in that sum,
-- ARGV[6] n, then n pairs: entry id, "job id \31 kind \31 attempt \31 duration ms",
-- then pairs for the jobs holding a unique key: pair number (1..n), index in KEYS
-- Returns the number of entries acknowledged by this call.
local n = tonumber(ARGV[6])
local unique = {}
for i = 7 + 2 * n, #ARGV, 2 do
  unique[tonumber(ARGV[i])] = tonumber(ARGV[i + 1])
end
local acked = {}
local record = {}
for p = 1, n do
  local i = 5 + 2 * p
  if redis.call('XACK', KEYS[3], ARGV[1], ARGV[i]) == 1 then
    acked[#acked + 1] = ARGV[i]
    record[#record + 1] = F.done_job
    record[#record + 1] = ARGV[i + 1]
    local k = unique[p]
    if k then
      uniq_release(KEYS[k], string.match(ARGV[i + 1], '^[^\31]*'))
    end
  end
end
if #acked > 0 then
  redis.call('XDEL', KEYS[3], unpack(acked))
  redis.call('HINCRBY', KEYS[2], S.completed, #acked)
  history_add(ARGV[3], #acked, 0, 0, tonumber(ARGV[4]), tonumber(ARGV[5]))
  local keep = tonumber(ARGV[2])
  if keep > 0 then
    local id = redis.call('XADD', KEYS[1], '*', unpack(record))
    redis.call('RPUSH', KEYS[4], id .. ' ' .. #acked)
    local kept = redis.call('HINCRBY', KEYS[2], S.done_kept, #acked)
    -- Trimming waits until half as many completions again have piled up, then
    -- drops whole records down to N in one XTRIM: the index says how many jobs
    -- each record holds, so no record is read.
    if kept >= keep + math.ceil(keep / 2) then
      local first = id
      while true do
        local head = redis.call('LINDEX', KEYS[4], 0)
        if not head then
          -- No index (lost, or records from before it existed): keep this batch.
          kept = #acked
          break
        end
        local space = string.find(head, ' ', 1, true)
        local jobs = tonumber(string.sub(head, space + 1))
        if kept - jobs < keep then
          first = string.sub(head, 1, space - 1)
          break
        end
        redis.call('LPOP', KEYS[4])
        kept = kept - jobs
      end
      redis.call('XTRIM', KEYS[1], 'MINID', first)
      redis.call('HSET', KEYS[2], S.done_kept, kept)
    end
  end
end
return #acked
