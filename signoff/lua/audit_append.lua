-- Append one entry to the audit hash chain, only if the chain head is still the one the
-- caller hashed against (compare-and-set: SHA-256 is computed by the caller because Redis
-- Lua has no SHA-256; a stale head returns the current one and the caller retries).
-- KEYS[1] audit stream, KEYS[2] chain head hash, KEYS[3] per-request index list
-- ARGV[1] prev hash the entry chains to, ARGV[2] seq, ARGV[3] ts, ARGV[4] event,
-- ARGV[5] request id, ARGV[6] actor, ARGV[7] details JSON, ARGV[8] entry hash,
-- ARGV[9] '1' to index the entry under KEYS[3], ARGV[10] index TTL seconds (0: none)
-- Returns {'ok', stream id} or {'conflict', head seq, head hash}
local head = redis.call('HMGET', KEYS[2], 'seq', 'hash')
local seq = head[1] or '0'
local hash = head[2] or string.rep('0', 64)
if hash ~= ARGV[1] or tonumber(seq) + 1 ~= tonumber(ARGV[2]) then
  return {'conflict', seq, hash}
end
local id = redis.call('XADD', KEYS[1], '*', 'seq', ARGV[2], 'ts', ARGV[3], 'event', ARGV[4],
                      'request_id', ARGV[5], 'actor', ARGV[6], 'details', ARGV[7],
                      'prev', ARGV[1], 'hash', ARGV[8])
redis.call('HSET', KEYS[2], 'seq', ARGV[2], 'hash', ARGV[8], 'id', id)
if ARGV[9] == '1' then
  redis.call('RPUSH', KEYS[3], id)
  if tonumber(ARGV[10]) > 0 then redis.call('EXPIRE', KEYS[3], tonumber(ARGV[10])) end
end
return {'ok', id}
