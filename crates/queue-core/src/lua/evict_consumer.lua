-- Removes a consumer without losing its pending entries: they are first handed to
-- the heir consumer with their idle time kept, so any live worker's reclaim takes
-- them over; the consumer is deleted once it holds nothing.
-- KEYS[1] lane stream; ARGV[1] group, ARGV[2] consumer, ARGV[3] heir, ARGV[4] chunk
-- Returns {entries moved, 1 if the consumer was deleted else 0}.
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
