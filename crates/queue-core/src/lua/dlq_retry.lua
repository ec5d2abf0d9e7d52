-- Moves one dead letter back to its lane stream. XDEL answers 1 only for the caller
-- that removed it, so two concurrent retries cannot both re-enqueue the job.
-- A job with a unique-until-settled key takes it again if no other job holds it
-- (if one does, the operator's retry still runs; the key stays with the other
-- job), or if the job that holds it no longer exists (unique.lua).
-- KEYS[1] dlq stream, KEYS[2] lane stream, with a unique key also KEYS[3] the key,
-- KEYS[4] the delayed set, KEYS[5..] the lane streams, lane 0 first;
-- ARGV[1] dlq entry id, ARGV[2] envelope, ARGV[3] job id, ARGV[4] lane index
-- Returns the new stream entry id, or false when the dead letter was already gone.
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then
  return false
end
local id = redis.call('XADD', KEYS[2], '*', F.envelope, ARGV[2])
if KEYS[3] then
  local held = redis.call('GET', KEYS[3])
  local streams = {}
  for i = 5, #KEYS do streams[#streams + 1] = KEYS[i] end
  if not held or not uniq_holder_exists(held, streams, KEYS[4]) then
    redis.call('SET', KEYS[3], uniq_in_stream(ARGV[3], ARGV[4], id))
  end
end
return id
