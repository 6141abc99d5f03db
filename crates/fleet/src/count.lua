-- Adds ARGV[1] tokens to today's count of the day hash KEYS[1] (a gateway key's tokens, known after the request).
local t = redis.call('TIME')
local day = math.floor(tonumber(t[1]) / 86400)
if tonumber(redis.call('HGET', KEYS[1], 'day')) ~= day then
  redis.call('HSET', KEYS[1], 'day', day, 'r', 0, 't', 0)
end
redis.call('HINCRBY', KEYS[1], 't', tonumber(ARGV[1]))
redis.call('EXPIRE', KEYS[1], 172800)
return 1
