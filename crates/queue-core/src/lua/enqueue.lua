-- Enqueue with a dedup key and/or a due time.
-- KEYS[1] target: the lane stream (mode "now") or the delayed set
-- KEYS[2] optional dedup key
-- ARGV[1] mode: "now" | "at" | "after"
-- ARGV[2] stream: envelope bytes; delayed set: lane digit followed by envelope bytes
-- ARGV[3] "at": due unix ms; "after": delay in ms; "now": ignored
-- ARGV[4] job id (stored under the dedup key)
-- ARGV[5] dedup ttl in ms (only with KEYS[2]); 0: no expiry, the key is released
--         when the job settles (complete.lua, dead_letter.lua)
-- Returns {1, stream entry id | due ms} when added, {0, existing job id} for a duplicate.
if KEYS[2] then
  local taken
  if ARGV[5] == '0' then
    taken = redis.call('SET', KEYS[2], ARGV[4], 'NX')
  else
    taken = redis.call('SET', KEYS[2], ARGV[4], 'NX', 'PX', ARGV[5])
  end
  if not taken then
    return {0, redis.call('GET', KEYS[2]) or ''}
  end
end
if ARGV[1] == 'now' then
  return {1, redis.call('XADD', KEYS[1], '*', F.envelope, ARGV[2])}
end
local due = tonumber(ARGV[3])
if ARGV[1] == 'after' then
  local t = redis.call('TIME')
  due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + due
end
redis.call('ZADD', KEYS[1], due, ARGV[2])
return {1, tostring(due)}
