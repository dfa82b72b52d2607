-- Record one vote and, in the same atomic step, count the quorum and close the request.
-- The quorum rule is policy/quorum.lua's quorum_met (prepended by signoff.store), the Lua twin
-- of policy.quorum_met: distinct people, one slot each (Hall's condition), escalation
-- stand-ins; tests/policy/test_quorum_lua.py checks it against the Python.
-- KEYS[1] record, KEYS[2] votes hash, KEYS[3] clicks set, KEYS[4] pending zset,
-- KEYS[5] deadlines zset, KEYS[6] outbox zset
-- ARGV[1] id, ARGV[2] person, ARGV[3] vote JSON ({choice, groups, ...}), ARGV[4] nonce or '',
-- ARGV[5] now, ARGV[6] clicks TTL seconds
-- Returns a JSON object {result, status, version, approvals, denials}
-- result: not_found | closed | stale | replay | already_voted | recorded | final
local function reply(t) return cjson.encode(t) end
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return reply({result = 'not_found'}) end
if st ~= 'pending' then return reply({result = 'closed', status = st}) end
-- Past the deadline a vote is refused even when no timer has closed the request yet (the
-- scheduler down, a clock that jumped): fail closed; the timeout path closes it.
local deadline = tonumber(redis.call('HGET', KEYS[1], 'deadline') or '')
if deadline and tonumber(ARGV[5]) >= deadline then
  return reply({result = 'closed', status = 'timed_out'})
end
-- A vote made on a version of the payload that an approver's edit has replaced counts for
-- nothing (an edited request needs its quorum on the edited version).
local cast = cjson.decode(ARGV[3])
local seen = cast['psh']
if type(seen) == 'string' and seen ~= '' then
  if redis.call('HGET', KEYS[1], 'payload_sha256') ~= seen then
    return reply({result = 'stale', status = st})
  end
end
if ARGV[4] ~= '' then
  if redis.call('SADD', KEYS[3], ARGV[4]) == 0 then
    return reply({result = 'replay', status = st})
  end
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[6]))
end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then
  return reply({result = 'already_voted', status = st})
end
-- One human, one vote: a delegate voting "for" someone (cast.by) and for himself counts once.
local actor = cast['by']
if type(actor) ~= 'string' or actor == '' then actor = ARGV[2] end
if actor ~= ARGV[2] and redis.call('HEXISTS', KEYS[2], actor) == 1 then
  return reply({result = 'already_voted', status = st})
end
for _, raw in ipairs(redis.call('HVALS', KEYS[2])) do
  local other = cjson.decode(raw)
  if other['by'] == actor then return reply({result = 'already_voted', status = st}) end
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])

local req = redis.call('HMGET', KEYS[1], 'req_quorum', 'req_groups', 'req_deny_quorum',
                      'index_keys', 'req_stand_in')
local quorum = tonumber(req[1]) or 1
local need = cjson.decode(req[2] or '{}')
local deny_quorum = tonumber(req[3]) or 1
local stand_in = cjson.decode(req[5] or '[]')
local approvals, denials, by_person = 0, 0, {}
local flat = redis.call('HGETALL', KEYS[2])
for i = 1, #flat, 2 do
  local v = cjson.decode(flat[i + 1])
  if v['choice'] == 'approve' then
    approvals = approvals + 1
    by_person[flat[i]] = v['groups'] or {}
  else
    denials = denials + 1
  end
end
local met = quorum_met(need, quorum, stand_in, by_person)
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'updated_at', ARGV[5])
local final = nil
if met then final = 'approved' elseif denials >= deny_quorum then final = 'denied' end
if final then
  redis.call('HSET', KEYS[1], 'status', final, 'decided_at', ARGV[5])
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('ZREM', KEYS[5], ARGV[1])
  redis.call('ZADD', KEYS[6], ARGV[5], ARGV[1])
  for _, k in ipairs(cjson.decode(req[4] or '[]')) do redis.call('ZREM', k, ARGV[1]) end
  return reply({result = 'final', status = final, version = version,
                approvals = approvals, denials = denials})
end
return reply({result = 'recorded', status = st, version = version,
              approvals = approvals, denials = denials})
