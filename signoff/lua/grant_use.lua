-- Consume a grant once unless it was revoked (atomic with grant_revoke.lua: whichever runs
-- first wins, so a grant is never both revoked and used).
-- KEYS[1] used marker, KEYS[2] grant record hash, KEYS[3] grant reports stream
-- ARGV[1] jti, ARGV[2] marker JSON {at, by}, ARGV[3] marker TTL seconds,
-- ARGV[4] report JSON ('' when the caller audits itself), ARGV[5] reports stream max length,
-- ARGV[6] now
-- Returns {result, detail}: ok | revoked | already_used
local function report(result)
  if ARGV[4] ~= '' then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'jti', ARGV[1],
               'result', result, 'report', ARGV[4])
  end
end
if redis.call('HGET', KEYS[2], 'state') == 'revoked' then
  report('revoked')
  return {'revoked', redis.call('HGET', KEYS[2], 'revoked_by') or ''}
end
if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', tonumber(ARGV[3])) then
  report('already_used')
  return {'already_used', redis.call('GET', KEYS[1]) or ''}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'state', 'used', 'used_at', ARGV[6])
end
report('used')
return {'ok', ''}
