-- Enqueue with a dedup key and/or a due time.
-- KEYS[1] target: the lane stream (mode "now") or the delayed set
-- KEYS[2] optional dedup key; with a unique-until-settled key (ttl 0) also
-- KEYS[3] the delayed set and KEYS[4..] the lane streams, lane 0 first, where
--         its holder may live
-- ARGV[1] mode: "now" | "at" | "after"
-- ARGV[2] stream: envelope bytes; delayed set: lane digit followed by envelope bytes
-- ARGV[3] "at": due unix ms; "after": delay in ms; "now": ignored
-- ARGV[4] job id (stored under the dedup key)
-- ARGV[5] dedup ttl in ms (only with KEYS[2]); 0: unique until settled, the key
--         names the job and where it lives (unique.lua) and is released when it
--         settles or is removed
-- ARGV[6] lane index ("now" with a unique key)
-- Returns {1, stream entry id | due ms} when added ({1, ..., id} when it took the
-- key over from a job that no longer exists), {0, existing job id} for a duplicate.
local unique = KEYS[2] and ARGV[5] == '0'
local previous = nil
if KEYS[2] then
  if unique then
    local held = redis.call('GET', KEYS[2])
    if held then
      local streams = {}
      for i = 4, #KEYS do streams[#streams + 1] = KEYS[i] end
      if uniq_holder_exists(held, streams, KEYS[3]) then
        return {0, uniq_holder(held)}
      end
      previous = uniq_holder(held)
    end
  elseif not redis.call('SET', KEYS[2], ARGV[4], 'NX', 'PX', ARGV[5]) then
    return {0, redis.call('GET', KEYS[2]) or ''}
  end
end
local reply
if ARGV[1] == 'now' then
  local id = redis.call('XADD', KEYS[1], '*', F.envelope, ARGV[2])
  if unique then
    redis.call('SET', KEYS[2], uniq_in_stream(ARGV[4], ARGV[6], id))
  end
  reply = {1, id}
else
  local due = tonumber(ARGV[3])
  if ARGV[1] == 'after' then
    local t = redis.call('TIME')
    due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + due
  end
  redis.call('ZADD', KEYS[1], due, ARGV[2])
  if unique then
    redis.call('SET', KEYS[2], uniq_in_delayed(ARGV[4], due))
  end
  reply = {1, tostring(due)}
end
if previous then
  reply[3] = previous
end
return reply
