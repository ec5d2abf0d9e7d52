-- Per-minute history counters: a library prepended to the scripts that settle
-- runs (scripts.rs), so the workers record them in the step that settles, with no
-- round trip of their own. One hash per queue and unix minute of the server's
-- clock, `PREFIX .. minute` (keys::QueueKeys::history, on the queue's hash tag
-- like the unique keys), expiring a day and an hour after its minute ends.

-- fields::history::KEEP_MINUTES, in seconds (a unit test keeps the two equal).
local HISTORY_KEEP_S = 90000

-- Adds to the current minute's counters; wait_ms < 0 means no run started
-- (an undecodable entry, a poison entry): nothing is added to the waits.
local function history_add(prefix, completed, failed, dead_lettered, wait_ms, waited)
  local t = redis.call('TIME')
  local minute = math.floor(tonumber(t[1]) / 60)
  local key = prefix .. minute
  if completed > 0 then redis.call('HINCRBY', key, H.completed, completed) end
  if failed > 0 then redis.call('HINCRBY', key, H.failed, failed) end
  if dead_lettered > 0 then redis.call('HINCRBY', key, H.dead_lettered, dead_lettered) end
  if waited > 0 and wait_ms >= 0 then
    redis.call('HINCRBY', key, H.wait_ms, wait_ms)
    redis.call('HINCRBY', key, H.waited, waited)
  end
  redis.call('EXPIREAT', key, (minute + 1) * 60 + HISTORY_KEEP_S)
end

