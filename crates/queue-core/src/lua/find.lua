-- Looks for a job by id in one chunk of one place (read-only): the caller
-- pages through a place chunk by chunk, so no call blocks Redis for long.
-- A job is recognised by the start of its envelope, field 1 (its id) encoded
-- first as protobuf encoders write it: ARGV[2] is those bytes.
-- KEYS[1] a lane stream or the dead-letter stream (mode 'stream'), the delayed
-- set (mode 'delayed'), the done stream (mode 'done')
-- ARGV[1] mode, ARGV[2] what to match: the envelope's first bytes (stream,
-- delayed) or "job id \31" (done),
-- ARGV[3] where to start: stream, an exclusive entry id or '-'; delayed, a rank;
-- done (newest first), an exclusive entry id or '+'
-- ARGV[4] where to stop: stream, an entry id or '+'; done, an entry id or '-';
-- delayed, ignored
-- ARGV[5] chunk size
-- Returns {1, entry id, envelope} (stream), {1, member, due ms} (delayed),
-- {1, record id, "job id \31 kind \31 attempt \31 duration ms"} (done: a record's
-- `j` field, or the job's part of its `b` field) when
-- found, else {0, where the next chunk starts, or '' when the place is done}.
local mode, want, n = ARGV[1], ARGV[2], tonumber(ARGV[5])
local len = #want
if mode == 'delayed' then
  local rank = tonumber(ARGV[3])
  local members = redis.call('ZRANGE', KEYS[1], rank, rank + n - 1, 'WITHSCORES')
  for i = 1, #members, 2 do
    -- A member is the lane digit, then the envelope.
    if string.sub(members[i], 2, len + 1) == want then
      return {1, members[i], members[i + 1]}
    end
  end
  if #members < 2 * n then return {0, ''} end
  return {0, tostring(rank + n)}
end
local entries
if mode == 'done' then
  entries = redis.call('XREVRANGE', KEYS[1], ARGV[3], ARGV[4], 'COUNT', n)
else
  entries = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[4], 'COUNT', n)
end
for _, e in ipairs(entries) do
  local f = e[2]
  for j = 1, #f, 2 do
    if mode == 'done' then
      if f[j] == F.done_job and string.sub(f[j + 1], 1, len) == want then
        return {1, e[1], f[j + 1]}
      elseif f[j] == F.done_batch then
        -- A batch: the job opens the value or follows a \30.
        local v = f[j + 1]
        local at = nil
        if string.sub(v, 1, len) == want then
          at = 1
        else
          at = string.find(v, '\30' .. want, 1, true)
          if at then at = at + 1 end
        end
        if at then
          local stop = string.find(v, '\30', at, true)
          return {1, e[1], string.sub(v, at, (stop or 0) - 1)}
        end
      end
    elseif f[j] == F.envelope and string.sub(f[j + 1], 1, len) == want then
      return {1, e[1], f[j + 1]}
    end
  end
end
if #entries < n then return {0, ''} end
return {0, '(' .. entries[#entries][1]}
