-- Close an open request without a vote: auto-decision, timeout, cancel, rejection.
-- KEYS[1] record, KEYS[2] pending zset, KEYS[3] deadlines zset, KEYS[4] outbox zset,
-- KEYS[5] received zset
-- ARGV[1] id, ARGV[2] comma-separated statuses it may leave, ARGV[3] new status, ARGV[4] now,
-- ARGV[5] reason, ARGV[6] '1' to act only when the deadline has passed, ARGV[7] JSON extra fields
-- Returns {result (changed|unchanged|not_found|not_due), status}
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'not_found', ''} end
local allowed = false
for s in string.gmatch(ARGV[2], '[^,]+') do
  if s == st then allowed = true end
end
if not allowed then return {'unchanged', st} end
if ARGV[6] == '1' then
  local deadline = tonumber(redis.call('HGET', KEYS[1], 'deadline') or '0')
  if deadline == 0 or deadline > tonumber(ARGV[4]) then return {'not_due', st} end
end
local flat = {'status', ARGV[3], 'decided_at', ARGV[4], 'updated_at', ARGV[4],
              'decision_reason', ARGV[5]}
for k, v in pairs(cjson.decode(ARGV[7])) do
  flat[#flat + 1] = k
  flat[#flat + 1] = v
end
redis.call('HSET', KEYS[1], unpack(flat))
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
local idx = redis.call('HGET', KEYS[1], 'index_keys')
if idx then
  for _, k in ipairs(cjson.decode(idx)) do redis.call('ZREM', k, ARGV[1]) end
end
return {'changed', ARGV[3]}
