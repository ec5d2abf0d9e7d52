-- Deletes up to ARGV[2] waiting (never delivered) entries of one lane. Delivered
-- entries are left alone: nothing removes a job a worker holds unacknowledged.
-- KEYS[1] lane stream; ARGV[1] group, ARGV[2] chunk size
-- Returns the envelopes of the entries deleted (none when no waiting entry is left),
-- so the caller can release their unique keys.
local last = nil
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
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
if #entries == 0 then return {} end
local ids = {}
local envelopes = {}
for _, e in ipairs(entries) do
  ids[#ids + 1] = e[1]
  local f = e[2]
  local env = ''
  for j = 1, #f, 2 do
    if f[j] == F.envelope then env = f[j + 1] end
  end
  envelopes[#envelopes + 1] = env
end
redis.call('XDEL', KEYS[1], unpack(ids))
return envelopes
