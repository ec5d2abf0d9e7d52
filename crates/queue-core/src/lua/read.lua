-- Non-blocking read of new entries, highest lane first, unless the queue is paused.
-- The pause check and the read are one step, so no job is handed out after a pause.
-- KEYS[1] paused flag, KEYS[2..] lane streams in lane order (highest priority first)
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] max entries
-- Returns false when paused, else a flat list {lane, id, fields, lane, id, fields, ...}.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local want = tonumber(ARGV[3])
local out = {}
for i = 2, #KEYS do
  if want <= 0 then break end
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', want, 'STREAMS', KEYS[i], '>')
  if r then
    local entries = r[1][2]
    for _, e in ipairs(entries) do
      out[#out + 1] = i - 2
      out[#out + 1] = e[1]
      out[#out + 1] = e[2]
    end
    want = want - #entries
  end
end
return out
