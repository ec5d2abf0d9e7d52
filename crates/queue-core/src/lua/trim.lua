-- Trims what a queue keeps to its retention (`Admin::trim`), on Redis's clock:
-- dead letters older than their max age or beyond their count, completions older
-- than their max age or beyond their count. A record's age is its entry id's
-- time (when it was added). Completions go by whole records of the done stream,
-- oldest first, while at least the count remain (as complete.lua trims), the
-- index and the kept counter following, so the two scripts stay in step.
-- KEYS[1] dlq stream, KEYS[2] done stream, KEYS[3] stats hash, KEYS[4] done index
-- ARGV[1] completions kept (0 leaves the count alone), ARGV[2] completions' max
-- age in ms (0: none), ARGV[3] dead letters kept (0: no cap), ARGV[4] dead
-- letters' max age in ms (0: none)
-- Returns {dead letters removed, completions removed}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local letters = 0
local letters_age = tonumber(ARGV[4])
if letters_age > 0 then
  letters = letters + redis.call('XTRIM', KEYS[1], 'MINID', math.max(now - letters_age, 0))
end
local letters_keep = tonumber(ARGV[3])
if letters_keep > 0 then
  letters = letters + redis.call('XTRIM', KEYS[1], 'MAXLEN', letters_keep)
end

local keep = tonumber(ARGV[1])
local age = tonumber(ARGV[2])
local cutoff = -1
if age > 0 then
  cutoff = now - age
end
local kept = tonumber(redis.call('HGET', KEYS[3], S.done_kept) or '0')
local removed = 0
local first = nil
while true do
  local head = redis.call('LINDEX', KEYS[4], 0)
  if not head then
    break
  end
  local space = string.find(head, ' ', 1, true)
  local id = string.sub(head, 1, space - 1)
  local jobs = tonumber(string.sub(head, space + 1))
  local old = tonumber(string.match(id, '^%d+')) < cutoff
  local over = keep > 0 and kept - jobs >= keep
  if not (old or over) then
    first = id
    break
  end
  redis.call('LPOP', KEYS[4])
  kept = kept - jobs
  removed = removed + jobs
end
if first then
  if removed > 0 then
    redis.call('XTRIM', KEYS[2], 'MINID', first)
  end
elseif cutoff > 0 then
  -- Every indexed record went, or there is no index: the age alone decides.
  redis.call('XTRIM', KEYS[2], 'MINID', cutoff)
end
if removed > 0 then
  redis.call('HSET', KEYS[3], S.done_kept, math.max(kept, 0))
end
return {letters, removed}
