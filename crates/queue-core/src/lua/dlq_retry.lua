-- Moves one dead letter back to its lane stream. XDEL answers 1 only for the caller
-- that removed it, so two concurrent retries cannot both re-enqueue the job.
-- A job with a unique-until-settled key takes it again if no other job holds it
-- (if one does, the operator's retry still runs; the key stays with the other job).
-- KEYS[1] dlq stream, KEYS[2] lane stream, KEYS[3] optional unique key;
-- ARGV[1] dlq entry id, ARGV[2] envelope, ARGV[3] job id
-- Returns the new stream entry id, or false when the dead letter was already gone.
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then
  return false
end
if KEYS[3] then
  redis.call('SET', KEYS[3], ARGV[3], 'NX')
end
return redis.call('XADD', KEYS[2], '*', F.envelope, ARGV[2])
