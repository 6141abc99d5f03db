-- Settles a permit taken by acquire.lua. KEYS as there; ARGV: member, its day, new tokens or -1 to refund.
-- Reconcile: the member's tokens become the reported ones. Refund: the request is taken out of every count.
local member, day, new = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local at, tag, old = string.match(member, '^(%d+):(.*):(%d+)$')
if not at then return 0 end
old = tonumber(old)
local renamed = at .. ':' .. tag .. ':' .. new
for i = 0, #KEYS / 4 - 1 do
  local m, mt, h, d = KEYS[i * 4 + 1], KEYS[i * 4 + 2], KEYS[i * 4 + 3], KEYS[i * 4 + 4]
  local same_day = tonumber(redis.call('HGET', d, 'day')) == day
  if new < 0 then
    if redis.call('ZREM', m, member) == 1 then redis.call('DECRBY', mt, old) end
    redis.call('ZREM', h, member)
    if same_day then
      redis.call('HINCRBY', d, 'r', -1)
      redis.call('HINCRBY', d, 't', -old)
    end
  else
    if redis.call('ZREM', m, member) == 1 then
      redis.call('ZADD', m, tonumber(at), renamed)
      redis.call('INCRBY', mt, new - old)
    end
    if redis.call('ZREM', h, member) == 1 then redis.call('ZADD', h, tonumber(at), renamed) end
    if same_day then redis.call('HINCRBY', d, 't', new - old) end
  end
end
return 1
