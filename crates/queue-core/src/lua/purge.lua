-- Deletes up to ARGV[2] waiting (never delivered) entries of one lane. Delivered
-- entries are left alone: nothing removes a job a worker holds unacknowledged.
-- KEYS[1] lane stream; ARGV[1] group, ARGV[2] chunk size
-- Returns the number of entries deleted (0 when no waiting entry is left).
local last = nil
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
  if info['name'] == ARGV[1] then last = info['last-delivered-id'] end
end
local entries
if last then
  entries = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', tonumber(ARGV[2]))
else
  entries = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', tonumber(ARGV[2]))
end
if #entries == 0 then return 0 end
local ids = {}
for _, e in ipairs(entries) do ids[#ids + 1] = e[1] end
return redis.call('XDEL', KEYS[1], unpack(ids))
