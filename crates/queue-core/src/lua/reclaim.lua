-- Takes over entries whose consumer stopped heart-beating (idle >= visibility timeout)
-- and dead-letters those delivered more than max_deliveries times (poison jobs that
-- kill their worker), in one step. A poison entry's unique key is released with it.
-- KEYS[1] lane stream, KEYS[2] dlq stream, KEYS[3] stats hash
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle ms, ARGV[4] cursor, ARGV[5] count,
-- ARGV[6] max deliveries, ARGV[7] dlq max length, ARGV[8] lane, ARGV[9] the queue's
-- uniq key prefix, ARGV[10] its history prefix (history.lua)
-- Returns {next cursor, {id, fields, deliveries, ...}, {envelope of each dead-lettered
-- entry}} (for the dead-letter hook).
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local maxd = tonumber(ARGV[6])
local maxlen = tonumber(ARGV[7])
local out = {}
local poisoned = {}
local now = nil
for _, e in ipairs(r[2]) do
  local id = e[1]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  local deliveries = 0
  if p[1] then deliveries = p[1][4] end
  if deliveries > maxd then
    if not now then
      local t = redis.call('TIME')
      now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    local env = ''
    local f = e[2] or {}
    for j = 1, #f, 2 do
      if f[j] == F.envelope then env = f[j + 1] end
    end
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
    local args = {'XADD', KEYS[2]}
    if maxlen > 0 then
      args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = maxlen
    end
    for _, v in ipairs({'*', F.envelope, env, F.error,
        'delivered ' .. deliveries .. ' times (max_deliveries ' .. maxd .. '): its worker stopped each time',
        F.attempts, '', F.failed_at, now, F.origin, id, F.lane, ARGV[8], F.id, '', F.kind, ''}) do
      args[#args + 1] = v
    end
    redis.call(unpack(args))
    uniq_release_envelope(ARGV[9], env)
    poisoned[#poisoned + 1] = env
  else
    out[#out + 1] = id
    out[#out + 1] = e[2] or {}
    out[#out + 1] = deliveries
  end
end
if #out > 0 then
  redis.call('HINCRBY', KEYS[3], S.reclaimed, #out / 3)
end
if #poisoned > 0 then
  redis.call('HINCRBY', KEYS[3], S.dead_lettered, #poisoned)
  redis.call('HINCRBY', KEYS[3], S.failed, #poisoned)
  history_add(ARGV[10], 0, #poisoned, #poisoned, -1, 0)
end
return {r[1], out, poisoned}
