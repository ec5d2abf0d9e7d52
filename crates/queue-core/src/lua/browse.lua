-- One page of a queue's waiting or active entries, lane by lane (lane 0 first),
-- each lane in entry order (read-only).
-- Waiting: entries after the group's last-delivered id (never delivered).
-- Active: the group's pending entries, with their consumer, idle ms and
-- deliveries, and the entry's envelope (false when the entry was deleted by hand).
-- KEYS[1..] lane streams, lane 0 first
-- ARGV[1] group, ARGV[2] 'waiting' | 'active', ARGV[3] first lane (0-based),
-- ARGV[4] in that lane, only entries after this id ('' from the start),
-- ARGV[5] most entries to return
-- Returns {lane, entry id, envelope or false, consumer, idle ms, deliveries} per
-- entry ('' and 0s for waiting entries).
local want = tonumber(ARGV[5])
local active = ARGV[2] == 'active'
local after = ARGV[4]
local out = {}

-- Whether entry id a is after entry id b (both 'ms-seq').
local function later(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if #am ~= #bm then return #am > #bm end
  if am ~= bm then return am > bm end
  return tonumber(as) > tonumber(bs)
end

for lane = tonumber(ARGV[3]), #KEYS - 1 do
  if #out >= want then break end
  local key = KEYS[lane + 1]
  if redis.call('EXISTS', key) == 1 then
    local last = nil
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
      local info = {}
      for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
      if info['name'] == ARGV[1] then last = info['last-delivered-id'] end
    end
    if active then
      if last then
        local start = '-'
        if after ~= '' then start = '(' .. after end
        for _, p in ipairs(redis.call('XPENDING', key, ARGV[1], start, '+', want - #out)) do
          local e = redis.call('XRANGE', key, p[1], p[1])
          local env = false
          if e[1] then
            local f = e[1][2]
            for j = 1, #f, 2 do
              if f[j] == F.envelope then env = f[j + 1] end
            end
          end
          out[#out + 1] = {lane, p[1], env, p[2], p[3], p[4]}
        end
      end
    else
      local from = after
      if last and (from == '' or later(last, from)) then from = last end
      local start = '-'
      if from ~= '' then start = '(' .. from end
      for _, e in ipairs(redis.call('XRANGE', key, start, '+', 'COUNT', want - #out)) do
        local env = false
        local f = e[2]
        for j = 1, #f, 2 do
          if f[j] == F.envelope then env = f[j + 1] end
        end
        out[#out + 1] = {lane, e[1], env, '', 0, 0}
      end
    end
  end
  after = ''
end
return out
