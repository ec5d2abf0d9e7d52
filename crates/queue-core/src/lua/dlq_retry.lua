-- Moves one dead letter back to its lane stream. XDEL answers 1 only for the caller
-- that removed it, so two concurrent retries cannot both re-enqueue the job.
-- KEYS[1] dlq stream, KEYS[2] lane stream; ARGV[1] dlq entry id, ARGV[2] envelope
-- Returns the new stream entry id, or false when the dead letter was already gone.
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then
  return false
end
return redis.call('XADD', KEYS[2], '*', F.envelope, ARGV[2])
