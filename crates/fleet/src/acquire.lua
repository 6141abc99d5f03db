-- Takes one request and ARGV[1] tokens from every scope, or from none, on Redis's clock.
-- KEYS, four per scope: minute set (member "<ms>:<tag>:<tokens>", score ms), minute token total, hour set, day hash.
-- ARGV: tokens, tag, then per scope rpm, rph, rpd, tpm, tpd (-1: no cap).
-- Returns {1, day, member} when taken, {0, wait_ms, ''} when capped, {-1, 0, ''} when a per-minute token cap is
-- smaller than the request.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local day = math.floor(tonumber(t[1]) / 86400)
local to_midnight = (day + 1) * 86400000 - now
local tokens = tonumber(ARGV[1])
local n = #KEYS / 4
local wait = 0
local function later(ms) if ms > wait then wait = ms end end
local function tokens_of(member) return tonumber(string.match(member, ':(%d+)$')) end
local function cap(i, j) return tonumber(ARGV[3 + i * 5 + j]) end
for i = 0, n - 1 do
  local m, mt, h, d = KEYS[i * 4 + 1], KEYS[i * 4 + 2], KEYS[i * 4 + 3], KEYS[i * 4 + 4]
  local rpm, rph, rpd, tpm, tpd = cap(i, 0), cap(i, 1), cap(i, 2), cap(i, 3), cap(i, 4)
  local gone = redis.call('ZRANGEBYSCORE', m, '-inf', now - 60000)
  if #gone > 0 then
    local freed = 0
    for _, g in ipairs(gone) do freed = freed + tokens_of(g) end
    redis.call('ZREMRANGEBYSCORE', m, '-inf', now - 60000)
    redis.call('DECRBY', mt, freed)
  end
  local stored = redis.call('HMGET', d, 'day', 'r', 't')
  local day_requests, day_tokens = 0, 0
  if tonumber(stored[1]) == day then
    day_requests = tonumber(stored[2]) or 0
    day_tokens = tonumber(stored[3]) or 0
  end
  if rpd >= 0 and day_requests >= rpd then later(to_midnight) end
  if tpd >= 0 and day_tokens + tokens > tpd and day_tokens > 0 then later(to_midnight) end
  if rph >= 0 then
    redis.call('ZREMRANGEBYSCORE', h, '-inf', now - 3600000)
    local limit = math.max(rph, 1)
    local count = redis.call('ZCARD', h)
    if count >= limit then
      local e = redis.call('ZRANGE', h, count - limit, count - limit, 'WITHSCORES')
      later(tonumber(e[2]) + 3600000 - now)
    end
  end
  if rpm >= 0 then
    local limit = math.max(rpm, 1)
    local count = redis.call('ZCARD', m)
    if count >= limit then
      -- The request that must leave the window first.
      local e = redis.call('ZRANGE', m, count - limit, count - limit, 'WITHSCORES')
      later(tonumber(e[2]) + 60000 - now)
    end
  end
  if tpm >= 0 then
    if tokens > tpm then return {-1, 0, ''} end
    local excess = tonumber(redis.call('GET', mt) or '0') + tokens - tpm
    if excess > 0 then
      local all = redis.call('ZRANGE', m, 0, -1, 'WITHSCORES')
      for j = 1, #all, 2 do
        excess = excess - tokens_of(all[j])
        if excess <= 0 then
          later(tonumber(all[j + 1]) + 60000 - now)
          break
        end
      end
      if excess > 0 then later(60000) end
    end
  end
end
if wait > 0 then return {0, wait, ''} end
local member = now .. ':' .. ARGV[2] .. ':' .. tokens
for i = 0, n - 1 do
  local m, mt, h, d = KEYS[i * 4 + 1], KEYS[i * 4 + 2], KEYS[i * 4 + 3], KEYS[i * 4 + 4]
  -- The minute window is kept only for a scope with a per-minute cap.
  if cap(i, 0) >= 0 or cap(i, 3) >= 0 then
    redis.call('ZADD', m, now, member)
    redis.call('INCRBY', mt, tokens)
    redis.call('PEXPIRE', m, 61000)
    redis.call('PEXPIRE', mt, 61000)
  end
  if cap(i, 1) >= 0 then
    redis.call('ZADD', h, now, member)
    redis.call('PEXPIRE', h, 3601000)
  end
  if tonumber(redis.call('HGET', d, 'day')) ~= day then
    redis.call('HSET', d, 'day', day, 'r', 0, 't', 0)
  end
  redis.call('HINCRBY', d, 'r', 1)
  redis.call('HINCRBY', d, 't', tokens)
  redis.call('EXPIRE', d, 172800)
end
return {1, day, member}
