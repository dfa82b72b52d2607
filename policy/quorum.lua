-- quorum_met: the Lua twin of policy.quorum.quorum_met, for the store's atomic vote step.
-- Prepend this file to a script and call quorum_met(need, quorum, stand_in, approvals):
--   need      table group -> minimum approvals ({dba = 2}); Requirement.groups
--   quorum    number of distinct approvers needed; Requirement.quorum
--   stand_in  array of group names that fill any slot; Requirement.stand_in_groups
--   approvals table person -> array of groups their approval counted toward (Vote.groups)
-- Met when the distinct approvers are at least `quorum` and, for every non-empty set S of
-- required groups, the approvers reaching some group of S are at least the sum of S's
-- minimums (Hall's condition: one person fills at most one slot). At most 8 groups.
local function quorum_met(need, quorum, stand_in, approvals)
  local people = {}
  local count = 0
  for person, groups in pairs(approvals) do
    local key = string.lower(string.match(person, '^%s*(.-)%s*$'))
    if people[key] == nil then
      people[key] = {}
      count = count + 1
    end
    for _, g in ipairs(groups) do people[key][g] = true end
  end
  if count < math.max(1, quorum) then return false end
  local names = {}
  for g, n in pairs(need) do
    if tonumber(n) > 0 then names[#names + 1] = g end
  end
  if #names == 0 then return true end
  local standin = {}
  for _, g in ipairs(stand_in) do standin[g] = true end
  local reach = {}
  for _, groups in pairs(people) do
    local any = false
    for g, _ in pairs(groups) do
      if standin[g] then any = true end
    end
    local mask = 0
    for i, g in ipairs(names) do
      if any or groups[g] then mask = mask + 2 ^ (i - 1) end
    end
    reach[#reach + 1] = mask
  end
  for subset = 1, 2 ^ #names - 1 do
    local wanted = 0
    for i, g in ipairs(names) do
      if bit.band(subset, 2 ^ (i - 1)) ~= 0 then wanted = wanted + tonumber(need[g]) end
    end
    local have = 0
    for _, mask in ipairs(reach) do
      if bit.band(subset, mask) ~= 0 then have = have + 1 end
    end
    if have < wanted then return false end
  end
  return true
end
