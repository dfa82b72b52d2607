-- Deliver the decision to the agent exactly once.
-- KEYS[1] record, KEYS[2] reply list, KEYS[3] decisions stream, KEYS[4] outbox zset
-- ARGV[1] id, ARGV[2] decision JSON, ARGV[3] reply TTL, ARGV[4] now, ARGV[5] decisions maxlen
-- Returns 1 when delivered now, 0 when it had been delivered already.
if redis.call('HSETNX', KEYS[1], 'replied_at', ARGV[4]) == 0 then
  redis.call('ZREM', KEYS[4], ARGV[1])
  return 0
end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'id', ARGV[1], 'body', ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
