-- Deletes one waiting entry or one delayed job, releasing the unique key it
-- holds in the same step (unique.lua). A waiting entry a worker has read since
-- it was found is running: it is left alone (nothing removes a job a worker
-- holds unacknowledged).
-- KEYS[1] the lane stream (mode 'stream') or the delayed set (mode 'delayed')
-- ARGV[1] mode, ARGV[2] entry id or member, ARGV[3] group, ARGV[4] the queue's
-- uniq key prefix
-- Returns 1 when deleted, 0 when it was gone already, -1 when it is running.
if ARGV[1] == 'delayed' then
  if redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then return 0 end
  uniq_release_envelope(ARGV[4], string.sub(ARGV[2], 2))
  return 1
end
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if not e[1] then return 0 end
local p = redis.pcall('XPENDING', KEYS[1], ARGV[3], ARGV[2], ARGV[2], 1)
if type(p) == 'table' and p[1] then return -1 end
redis.call('XDEL', KEYS[1], ARGV[2])
local f = e[1][2]
for j = 1, #f, 2 do
  if f[j] == F.envelope then uniq_release_envelope(ARGV[4], f[j + 1]) end
end
return 1
