-- Deletes up to ARGV[2] waiting (never delivered) entries of each lane and up to
-- ARGV[2] delayed jobs, releasing the unique keys they held in the same step.
-- Delivered entries are left alone: nothing removes a job a worker holds
-- unacknowledged.
-- KEYS[1] delayed set, KEYS[2..] lane streams; ARGV[1] group, ARGV[2] chunk size,
-- ARGV[3] the queue's uniq key prefix
-- Returns {waiting entries deleted, delayed jobs deleted}: {0, 0} once none is left.
local chunk = tonumber(ARGV[2])
local waiting = 0
for s = 2, #KEYS do
  if redis.call('EXISTS', KEYS[s]) == 1 then
    local last = nil
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[s])) do
      local info = {}
      for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
      if info['name'] == ARGV[1] then last = info['last-delivered-id'] end
    end
    local entries
    if last then
      entries = redis.call('XRANGE', KEYS[s], '(' .. last, '+', 'COUNT', chunk)
    else
      entries = redis.call('XRANGE', KEYS[s], '-', '+', 'COUNT', chunk)
    end
    if #entries > 0 then
      local ids = {}
      for _, e in ipairs(entries) do
        ids[#ids + 1] = e[1]
        local f = e[2]
        for j = 1, #f, 2 do
          if f[j] == F.envelope then uniq_release_envelope(ARGV[3], f[j + 1]) end
        end
      end
      redis.call('XDEL', KEYS[s], unpack(ids))
      waiting = waiting + #entries
    end
  end
end
local popped = redis.call('ZPOPMIN', KEYS[1], chunk)
for i = 1, #popped, 2 do
  uniq_release_envelope(ARGV[3], string.sub(popped[i], 2))
end
return {waiting, #popped / 2}
