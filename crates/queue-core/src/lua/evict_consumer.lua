-- Removes a consumer without losing its pending entries: they are first handed to
-- the heir consumer with their idle time kept, so any live worker's reclaim takes
-- them over; the consumer is deleted once it holds nothing.
-- The consumer's idle time is checked here, in the same step as the move: a
-- consumer that resumed since it was listed as idle keeps what it just read.
-- KEYS[1] lane stream; ARGV[1] group, ARGV[2] consumer, ARGV[3] heir, ARGV[4] chunk,
-- ARGV[5] min idle ms
-- Returns {entries moved, 1 if the consumer was deleted, 0 if more remain to move,
-- -1 if it is not idle (nothing moved)}.
local idle = nil
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for j = 1, #c, 2 do info[c[j]] = c[j + 1] end
  if info['name'] == ARGV[2] then idle = info['idle'] end
end
if idle == nil then
  return {0, 1}
end
if idle < tonumber(ARGV[5]) then
  return {0, -1}
end
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', tonumber(ARGV[4]), ARGV[2])
local moved = 0
for _, e in ipairs(p) do
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, e[1], 'IDLE', e[3], 'JUSTID')
  moved = moved + 1
end
if #p < tonumber(ARGV[4]) then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
  return {moved, 1}
end
return {moved, 0}
