-- Moves one delayed job into its lane stream now (an operator's "run it now").
-- ZREM answers 1 only to the caller that removed the member, so a job promoted
-- by the workers meanwhile is not added twice. A job holding a unique key has
-- the key point at its new entry (unique.lua).
-- KEYS[1] delayed set, KEYS[2..] lane streams in lane order
-- ARGV[1] the member as found, ARGV[2] the envelope to add (ready now),
-- ARGV[3] the queue's uniq key prefix
-- Returns the new entry id, or false when the member is no longer delayed.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return false
end
local lanes = #KEYS - 1
local lane = tonumber(string.sub(ARGV[1], 1, 1)) or 0
if lane >= lanes then lane = lanes - 1 end
local entry = redis.call('XADD', KEYS[lane + 2], '*', F.envelope, ARGV[2])
local job_id, key = envelope_ids(ARGV[2])
if key and key ~= '' then
  uniq_move(ARGV[3] .. key, job_id, uniq_in_stream(job_id, lane, entry))
end
return entry
