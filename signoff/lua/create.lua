-- Create a request record once (idempotent on id).
-- KEYS[1] record hash, KEYS[2] all-requests zset, KEYS[3] received zset
-- ARGV[1] id, ARGV[2] now, ARGV[3] JSON object of string fields, ARGV[4] the packed fields
-- (signoff/record_codec.py; '' for none)
-- Returns {created (1/0), status, body_sha256 of the stored request}
if redis.call('EXISTS', KEYS[1]) == 1 then
  local cur = redis.call('HMGET', KEYS[1], 'status', 'body_sha256')
  return {0, cur[1], cur[2] or ''}
end
local fields = cjson.decode(ARGV[3])
local flat = {}
for k, v in pairs(fields) do
  flat[#flat + 1] = k
  flat[#flat + 1] = v
end
flat[#flat + 1] = 'status'; flat[#flat + 1] = 'received'
flat[#flat + 1] = 'created_at'; flat[#flat + 1] = ARGV[2]
flat[#flat + 1] = 'updated_at'; flat[#flat + 1] = ARGV[2]
flat[#flat + 1] = 'version'; flat[#flat + 1] = '1'
if ARGV[4] ~= nil and ARGV[4] ~= '' then
  flat[#flat + 1] = 'packed'; flat[#flat + 1] = ARGV[4]
end
redis.call('HSET', KEYS[1], unpack(flat))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
-- Indexes that live until the request closes (close/vote remove every index_keys entry).
for _, k in ipairs(cjson.decode(fields['index_keys'] or '[]')) do
  redis.call('ZADD', k, ARGV[2], ARGV[1])
end
return {1, 'received', fields['body_sha256'] or ''}
