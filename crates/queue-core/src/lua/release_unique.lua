-- Releases unique-until-settled keys of jobs that left the queue by a path that
-- could not see the key (a poison entry dead-lettered by reclaim.lua, a purge):
-- each key is deleted only while it still holds that job's id.
-- KEYS[i] unique key, ARGV[i] the id of the job that held it
-- Returns the number of keys released.
local released = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i] then
    redis.call('DEL', KEYS[i])
    released = released + 1
  end
end
return released
