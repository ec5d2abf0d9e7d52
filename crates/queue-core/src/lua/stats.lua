-- A consistent snapshot of one queue.
-- KEYS[1] delayed, KEYS[2] dlq, KEYS[3] stats, KEYS[4] paused, KEYS[5..] lane streams
-- ARGV[1] group
-- Returns {delayed, dlq, paused, now_ms, {counter, value, ...},
--          per lane: {length, pending, lag or -1, oldest waiting id or "", consumers}}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lanes = {}
for i = 5, #KEYS do
  local len = redis.call('XLEN', KEYS[i])
  local pending, lag, oldest, consumers = 0, -1, '', 0
  local last = nil
  local grouped = false
  if len > 0 or redis.call('EXISTS', KEYS[i]) == 1 then
    local groups = redis.call('XINFO', 'GROUPS', KEYS[i])
    for _, g in ipairs(groups) do
      local info = {}
      for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
      if info['name'] == ARGV[1] then
        pending = info['pending']
        consumers = info['consumers']
        last = info['last-delivered-id']
        grouped = true
        if info['lag'] then lag = info['lag'] end
      end
    end
  end
  -- Without a group (no worker has started yet) every entry is unread.
  if not grouped then lag = len end
  if len > pending then
    local first
    if last then
      first = redis.call('XRANGE', KEYS[i], '(' .. last, '+', 'COUNT', 1)
    else
      first = redis.call('XRANGE', KEYS[i], '-', '+', 'COUNT', 1)
    end
    if first[1] then oldest = first[1][1] end
  end
  lanes[#lanes + 1] = {len, pending, lag, oldest, consumers}
end
return {redis.call('ZCARD', KEYS[1]), redis.call('XLEN', KEYS[2]),
        redis.call('EXISTS', KEYS[4]), now, redis.call('HGETALL', KEYS[3]), lanes}
