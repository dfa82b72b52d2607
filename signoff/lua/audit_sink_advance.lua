-- Move one SIEM destination's cursor, only while the caller still holds its lease (a sink
-- process that lost its lease, e.g. paused past the TTL, must not move the cursor another
-- process now owns: that could skip or repeat entries out of order).
-- KEYS[1] the destination's cursor hash, KEYS[2] its lease
-- ARGV[1] lease token, ARGV[2] last delivered stream id, ARGV[3] its seq,
-- ARGV[4] how many entries were delivered, ARGV[5] now (seconds)
-- Returns 1 when moved, 0 when the lease is not ours.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if tonumber(ARGV[3]) <= seq then
  return 0
end
redis.call('HSET', KEYS[1], 'id', ARGV[2], 'seq', ARGV[3], 'last_success', ARGV[5],
           'last_error', '', 'failing_since', '')
redis.call('HINCRBY', KEYS[1], 'delivered', tonumber(ARGV[4]))
return 1
