-- Moves due members of the delayed set into their lane streams, by Redis server time.
-- A job holding a unique key has the key point at its new stream entry (unique.lua).
-- KEYS[1] delayed set, KEYS[2..] lane streams in lane order
-- ARGV[1] max members to move, ARGV[2] the queue's uniq key prefix
-- Returns {moved, ms until the next member is due or -1 when the set is empty}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local lanes = #KEYS - 1
for _, m in ipairs(due) do
  local lane = tonumber(string.sub(m, 1, 1)) or 0
  if lane >= lanes then lane = lanes - 1 end
  local env = string.sub(m, 2)
  local entry = redis.call('XADD', KEYS[lane + 2], '*', F.envelope, env)
  redis.call('ZREM', KEYS[1], m)
  local job_id, key = envelope_ids(env)
  if key and key ~= '' then
    uniq_move(ARGV[2] .. key, job_id, uniq_in_stream(job_id, lane, entry))
  end
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = -1
if nxt[2] then
  wait = math.max(0, tonumber(nxt[2]) - now)
end
return {#due, wait}
