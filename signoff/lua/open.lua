-- received -> pending, storing what prepare computed, and indexing the request.
-- KEYS[1] record, KEYS[2] pending zset, KEYS[3] deadlines zset, KEYS[4] received zset
-- ARGV[1] id, ARGV[2] now, ARGV[3] deadline, ARGV[4] JSON fields, ARGV[5] JSON list of group-index keys,
-- ARGV[6] the packed fields (signoff/record_codec.py; '' for none: left as they are), ARGV[7] JSON
-- list of the names it holds (a plain field of one of those names is dropped: the packed value
-- is the newer)
-- (Group index keys are passed by the caller, never built here.)
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'not_found', ''} end
if st ~= 'received' then return {'unchanged', st} end
local fields = cjson.decode(ARGV[4])
-- Keep the indexes create added (open requests per agent) beside the group indexes.
local index = cjson.decode(ARGV[5])
local seen = {}
for _, k in ipairs(index) do seen[k] = true end
for _, k in ipairs(cjson.decode(redis.call('HGET', KEYS[1], 'index_keys') or '[]')) do
  if not seen[k] then index[#index + 1] = k; seen[k] = true end
end
fields['index_keys'] = cjson.encode(index)
local flat = {}
for k, v in pairs(fields) do
  flat[#flat + 1] = k
  flat[#flat + 1] = v
end
flat[#flat + 1] = 'status'; flat[#flat + 1] = 'pending'
flat[#flat + 1] = 'updated_at'; flat[#flat + 1] = ARGV[2]
flat[#flat + 1] = 'deadline'; flat[#flat + 1] = ARGV[3]
if ARGV[6] ~= nil and ARGV[6] ~= '' then
  flat[#flat + 1] = 'packed'; flat[#flat + 1] = ARGV[6]
  local names = cjson.decode(ARGV[7])
  if #names > 0 then redis.call('HDEL', KEYS[1], unpack(names)) end
end
redis.call('HSET', KEYS[1], unpack(flat))
redis.call('HINCRBY', KEYS[1], 'version', 1)
local created = redis.call('HGET', KEYS[1], 'created_at')
redis.call('ZADD', KEYS[2], created, ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
for _, k in ipairs(cjson.decode(ARGV[5])) do
  redis.call('ZADD', k, created, ARGV[1])
end
return {'changed', 'pending'}
