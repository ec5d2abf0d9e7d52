-- Keeps the claim on long-running entries alive: resets their idle time with
-- XCLAIM ... JUSTID (which does not count as a delivery), but only for entries this
-- consumer still owns, so a heartbeat never steals an entry back.
-- KEYS[1] lane stream; ARGV[1] group, ARGV[2] consumer, ARGV[3..] entry ids
-- Returns the ids that are no longer ours.
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
