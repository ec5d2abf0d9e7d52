-- Acknowledges finished jobs of one lane and records their completion, for a batch.
-- A job is counted complete at most once: one XACK takes the whole batch and
-- answers how many entries were still pending. All of them (the rule) and the
-- batch is this call's. Fewer: some were settled already by another consumer
-- (after a reclaim ran them twice), and every script that settles an entry
-- deletes it in the same step, so the entries of the batch still in the stream
-- are the ones this call acknowledged; only those are counted and recorded.
-- The acknowledged entries are then deleted: those below the group's oldest
-- pending entry by one XTRIM MINID (every entry below it is delivered and no
-- longer pending, so settled: whole listpack nodes are freed without a lookup
-- per entry), the rest (newer than a job still running) by one XDEL. The batch
-- is recorded as one entry of the done stream: one `b` field, the batch's done
-- values as the worker joined them, untouched by the script when all of the
-- batch was acknowledged; split, to keep only this call's jobs, otherwise. The
-- stream keeps the last N completions (between N and 1.5 N, plus a batch), not
-- N records: the stats hash counts the completions it holds, and whole records
-- are dropped oldest first, once 1.5 N are held, while at least N remain. A job
-- that holds a unique-until-settled key releases it here, if the key is still
-- its own.
-- KEYS[1] done stream, KEYS[2] stats hash, KEYS[3] lane stream, KEYS[4] done index
-- (a list of "record id, jobs in it", oldest first), KEYS[5..] unique keys
-- The batch is counted in the current minute's history (history.lua) with the
-- waits of its runs.
-- ARGV[1] group, ARGV[2] completions the done stream keeps (0 keeps none),
-- ARGV[3] the queue's history prefix, ARGV[4] the runs' waits in ms, summed,
-- ARGV[5] runs in that sum,
-- ARGV[6] n, then the n entry ids in ascending order, then the n done values
-- "job id \31 kind \31 attempt \31 duration ms" in the same order, joined by
-- \30 into one argument, then triples for the jobs holding a unique key:
-- position (1..n), index in KEYS, job id
-- Returns the number of entries acknowledged by this call.
local n = tonumber(ARGV[6])
local ID0 = 6
local batch = ARGV[7 + n]
local unique = {}
for i = 8 + n, #ARGV, 3 do
  unique[#unique + 1] = {tonumber(ARGV[i]), tonumber(ARGV[i + 1]), ARGV[i + 2]}
end

-- Stream ids compare as (ms, seq) numbers, not as strings.
local function parse_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local acked = redis.call('XACK', KEYS[3], ARGV[1], unpack(ARGV, ID0 + 1, ID0 + n))
-- Positions of the batch this call settles.
local mine
if acked == n then
  mine = nil -- all of them
  local pending = redis.call('XPENDING', KEYS[3], ARGV[1])
  -- Entries below `bound` are trimmed: below the oldest pending entry, and no
  -- further than the newest of this batch.
  local last_ms, last_seq = parse_id(ARGV[ID0 + n])
  local bound = string.match(ARGV[ID0 + n], '^%d+') .. '-' .. string.format('%.0f', last_seq + 1)
  local rest = ID0 + n -- ids above it go by XDEL
  if pending[1] > 0 then
    local p_ms, p_seq = parse_id(pending[2])
    if p_ms < last_ms or (p_ms == last_ms and p_seq <= last_seq) then
      bound = pending[2]
      rest = ID0
      for i = ID0 + n, ID0 + 1, -1 do
        local ms, seq = parse_id(ARGV[i])
        if ms < p_ms or (ms == p_ms and seq < p_seq) then
          rest = i
          break
        end
      end
    end
  end
  if rest > ID0 then
    redis.call('XTRIM', KEYS[3], 'MINID', bound)
  end
  if rest < ID0 + n then
    redis.call('XDEL', KEYS[3], unpack(ARGV, rest + 1, ID0 + n))
  end
else
  mine = {}
  local seen = {}
  local gone = {}
  for p = 1, n do
    local id = ARGV[ID0 + p]
    if not seen[id] then
      seen[id] = true
      if #redis.call('XRANGE', KEYS[3], id, id) > 0 then
        mine[#mine + 1] = p
        gone[#gone + 1] = id
      end
    end
  end
  if #gone > 0 then
    redis.call('XDEL', KEYS[3], unpack(gone))
  end
  acked = #mine
end

if acked > 0 then
  local record = batch
  if mine then
    -- Rare path (a reclaim ran some twice): keep only this call's jobs.
    local values = {}
    for value in string.gmatch(batch, '[^\30]+') do
      values[#values + 1] = value
    end
    local own = {}
    for i, p in ipairs(mine) do
      own[i] = values[p]
    end
    record = table.concat(own, '\30')
  end
  local settled = nil -- every position, unless only `mine`
  if mine and #unique > 0 then
    settled = {}
    for _, p in ipairs(mine) do settled[p] = true end
  end
  for _, u in ipairs(unique) do
    if mine == nil or settled[u[1]] then
      uniq_release(KEYS[u[2]], u[3])
    end
  end
  redis.call('HINCRBY', KEYS[2], S.completed, acked)
  history_add(ARGV[3], acked, 0, 0, tonumber(ARGV[4]), tonumber(ARGV[5]))
  local keep = tonumber(ARGV[2])
  if keep > 0 then
    local id = redis.call('XADD', KEYS[1], '*', F.done_batch, record)
    redis.call('RPUSH', KEYS[4], id .. ' ' .. acked)
    local kept = redis.call('HINCRBY', KEYS[2], S.done_kept, acked)
    -- Trimming waits until half as many completions again have piled up, then
    -- drops whole records down to N in one XTRIM: the index says how many jobs
    -- each record holds, so no record is read.
    if kept >= keep + math.ceil(keep / 2) then
      local first = id
      while true do
        local head = redis.call('LINDEX', KEYS[4], 0)
        if not head then
          -- No index (lost, or records from before it existed): keep this batch.
          kept = acked
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
return acked
