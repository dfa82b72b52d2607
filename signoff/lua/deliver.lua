-- Deliver the decision to the agent exactly once.
-- KEYS[1] record, KEYS[2] reply list, KEYS[3] decisions stream (Signoff's own), KEYS[4] outbox
-- zset, KEYS[5] the agent's own decisions stream (optional)
-- ARGV[1] id, ARGV[2] decision JSON, ARGV[3] reply TTL, ARGV[4] now, ARGV[5] decisions maxlen
-- Returns 1 when delivered now, 0 when it had been delivered already.
-- The reply list and the agent's decisions stream live in the agent's own namespace, which the
-- agent may write: a key of the wrong type there (the agent's doing) is replaced, so it can
-- spoil only its own reply and never stop this script.
if redis.call('HSETNX', KEYS[1], 'replied_at', ARGV[4]) == 0 then
  redis.call('ZREM', KEYS[4], ARGV[1])
  return 0
end
local function expect(key, kind)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= kind then redis.call('DEL', key) end
end
expect(KEYS[2], 'list')
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'id', ARGV[1], 'body', ARGV[2])
if KEYS[5] then
  expect(KEYS[5], 'stream')
  local decision = cjson.decode(ARGV[2])
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], '*', 'id', decision['id'], 'body', ARGV[2])
end
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
