-- Unique-until-settled keys: a library prepended to the scripts that add, move
-- or remove jobs (scripts.rs). A key's value names its holder and where the
-- holder lives, as text:
--   job id \31 s lane \31 stream entry id   (waiting or running in a lane stream)
--   job id \31 d due ms                     (in the delayed set)
-- Every script that moves a job rewrites the location in the same step, and
-- every script that removes one releases its key (only while the key still
-- names it), so a key never outlives its job by a lost reply or a crash. A job
-- removed behind the key's back (ZREM, XDEL by hand) is caught by the enqueue
-- that finds the key taken: it checks the location (XRANGE id id, ZRANGEBYSCORE
-- due due) and takes the key over when the holder is gone. A value without a
-- location (written before locations existed) counts as held.
-- Keys named inside an envelope are built from the queue's uniq prefix, which
-- carries its hash tag: they live on the slot of the script's declared keys.

-- Members of the delayed set looked at for one due time: beyond that many jobs
-- due in the same millisecond, a holder not found among them counts as held.
local UNIQ_SAME_DUE_SCAN = 1000

-- The job id a key's value names.
local function uniq_holder(value)
  local sep = string.find(value, '\31', 1, true)
  if sep then return string.sub(value, 1, sep - 1) end
  return value
end

local function uniq_in_stream(job_id, lane, entry_id)
  return job_id .. '\31s' .. lane .. '\31' .. entry_id
end

local function uniq_in_delayed(job_id, due)
  return job_id .. '\31d' .. due
end

-- The id (field 1) and unique key (field 10) of an encoded envelope; nil when
-- the bytes are not a protobuf message.
local function envelope_ids(env)
  local i, n = 1, #env
  local id, key = '', ''
  local function varint()
    local v, mul = 0, 1
    while i <= n do
      local b = string.byte(env, i)
      i = i + 1
      v = v + (b % 128) * mul
      if b < 128 then return v end
      mul = mul * 128
    end
    return nil
  end
  while i <= n do
    local tag = varint()
    if not tag then return nil end
    local field, wire = math.floor(tag / 8), tag % 8
    if wire == 0 then
      if not varint() then return nil end
    elseif wire == 2 then
      local len = varint()
      if not len or i + len - 1 > n then return nil end
      if field == 1 then
        id = string.sub(env, i, i + len - 1)
      elseif field == 10 then
        key = string.sub(env, i, i + len - 1)
      end
      i = i + len
    elseif wire == 1 then
      i = i + 8
    elseif wire == 5 then
      i = i + 4
    else
      return nil
    end
  end
  if i ~= n + 1 then return nil end
  return id, key
end

-- Whether the job a key's value names is still where the value says.
-- streams: the lane streams' key names, lane 0 first; delayed: the delayed set.
local function uniq_holder_exists(value, streams, delayed)
  local sep = string.find(value, '\31', 1, true)
  if not sep then return true end
  local job_id = string.sub(value, 1, sep - 1)
  local kind = string.sub(value, sep + 1, sep + 1)
  if kind == 's' then
    local sep2 = string.find(value, '\31', sep + 2, true)
    local stream = sep2 and streams[(tonumber(string.sub(value, sep + 2, sep2 - 1)) or -1) + 1]
    if not stream then return true end
    local id = string.sub(value, sep2 + 1)
    return #redis.call('XRANGE', stream, id, id) > 0
  elseif kind == 'd' then
    local due = string.sub(value, sep + 2)
    local members = redis.call('ZRANGEBYSCORE', delayed, due, due, 'LIMIT', 0, UNIQ_SAME_DUE_SCAN)
    for _, m in ipairs(members) do
      if envelope_ids(string.sub(m, 2)) == job_id then return true end
    end
    return #members >= UNIQ_SAME_DUE_SCAN
  end
  return true
end

-- Records where job `job_id` lives now (`value`), if the key is still its own
-- or free.
local function uniq_move(key, job_id, value)
  local held = redis.call('GET', key)
  if not held or uniq_holder(held) == job_id then
    redis.call('SET', key, value)
  end
end

-- Releases the key of a job that just left the queue, if the key still names it.
local function uniq_release(key, job_id)
  local held = redis.call('GET', key)
  if held and uniq_holder(held) == job_id then
    redis.call('DEL', key)
  end
end

-- The same for a job known only by its encoded envelope; prefix: the uniq prefix.
local function uniq_release_envelope(prefix, env)
  local id, key = envelope_ids(env)
  if key and key ~= '' then
    uniq_release(prefix .. key, id)
  end
end

