-- Revoke an unused grant (atomic with grant_use.lua: whichever runs first wins).
-- KEYS[1] used marker, KEYS[2] grant record hash, KEYS[3] request record hash,
-- KEYS[4] the agent's own use marker and KEYS[5] the agent's revocation mirror (a registered
-- agent's grant: its SDK consumes and checks those in its own namespace; optional)
-- ARGV[1] jti, ARGV[2] now, ARGV[3] who revokes, ARGV[4] reason, ARGV[5] grant record TTL
-- seconds, ARGV[6] request id
-- Returns {result, detail}: revoked | already_revoked | already_used
local used = redis.call('GET', KEYS[1])
if used then return {'already_used', used} end
if KEYS[4] and redis.call('TYPE', KEYS[4])['ok'] == 'string' then
  return {'already_used', redis.call('GET', KEYS[4])}
end
if redis.call('HGET', KEYS[2], 'state') == 'revoked' then
  return {'already_revoked', redis.call('HGET', KEYS[2], 'revoked_by') or ''}
end
redis.call('HSET', KEYS[2], 'jti', ARGV[1], 'rid', ARGV[6], 'state', 'revoked',
           'revoked_at', ARGV[2], 'revoked_by', ARGV[3], 'revoke_reason', ARGV[4])
if redis.call('TTL', KEYS[2]) < 0 then
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
end
if KEYS[5] then
  -- The agent may have put anything at its own key: replace it with the revocation.
  redis.call('DEL', KEYS[5])
  redis.call('HSET', KEYS[5], 'state', 'revoked', 'revoked_by', ARGV[3])
  redis.call('EXPIRE', KEYS[5], tonumber(ARGV[5]))
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'grant_revoked_at', ARGV[2], 'grant_revoked_by', ARGV[3],
             'updated_at', ARGV[2])
  redis.call('HINCRBY', KEYS[3], 'version', 1)
end
return {'revoked', ''}
