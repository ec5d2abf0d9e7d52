-- Admits one start under the queue's global limits, counted across every
-- replica. Times come from the server's clock, so replicas' clocks never matter.
-- KEYS[1] running leases (zset: member -> lease expiry ms)
-- KEYS[2] recent starts (zset: start id -> start ms), KEYS[3] the pause flag
-- ARGV[1] member (lane:entry id), ARGV[2] lease ms, ARGV[3] most running (0: no
-- cap), ARGV[4] most starts per window (0: no cap), ARGV[5] window ms
-- Returns 0 when admitted (and records the start and the lease); otherwise the ms
-- to wait before asking again, -1 while every running slot is taken, -2 while
-- the queue is paused (a run that waited must not start after `pause` returned).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[3]) == 1 then
  return -2
end
local member, lease = ARGV[1], tonumber(ARGV[2])
local max_running, max_starts, window = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if max_running > 0 then
  -- Leases of replicas that died expire; a live replica refreshes its own.
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  -- An entry reclaimed from a dead holder takes its lease over, not a second one.
  if not redis.call('ZSCORE', KEYS[1], member) and redis.call('ZCARD', KEYS[1]) >= max_running then
    return -1
  end
end
if max_starts > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
  if redis.call('ZCARD', KEYS[2]) >= max_starts then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return math.max(1, tonumber(oldest[2]) + window - now)
  end
  redis.call('ZADD', KEYS[2], now, member .. '@' .. now)
  redis.call('PEXPIRE', KEYS[2], window)
end
if max_running > 0 then
  redis.call('ZADD', KEYS[1], now + lease, member)
  redis.call('PEXPIRE', KEYS[1], lease)
end
return 0
