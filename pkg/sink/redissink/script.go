package redissink

import (
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Operations of the apply script.
const (
	opReplace = "r" // replace the row's hash with the fields given
	opMerge   = "m" // set the fields given, delete the fields named (a partial row image)
	opDelete  = "d" // delete the row, leave a tombstone
)

// applyScript applies one call's changes in order and then, when told,
// stores the progress. Redis runs it atomically.
//
// KEYS[1] is the progress key, then two keys per change: the row's key and
// its tombstone key.
//
// ARGV[1] version field, ARGV[2] row TTL in ms (0: none), ARGV[3]
// tombstone TTL in ms, ARGV[4] "1" to store ARGV[5] (the progress) under
// KEYS[1]; then per change: op, version head, version tail, n, n field and
// value pairs, m, m field names (to delete, opMerge only).
//
// A first pass reads every row's version (its hash's version field, else
// its tombstone) before anything is written, so that a key of another type
// fails the call with nothing written (Redis does not undo a script's
// writes before an error). A change is applied when the row has no
// version, a version of another head (another binlog history), or a lower
// tail. It returns {applied, skipped}.
var applyScript = redis.NewScript(`
local vf = ARGV[1]
local ttl = tonumber(ARGV[2])
local tombttl = tonumber(ARGV[3])
local TAIL = ` + strconv.Itoa(versionTailLen) + `
local CHUNK = 1000

local function newer(stored, head, tail)
  if not stored then return true end
  local n = string.len(stored)
  if n <= TAIL then return true end
  if string.sub(stored, 1, n - TAIL - 1) ~= head then return true end
  return tail > string.sub(stored, n - TAIL + 1)
end

local function failed(r)
  return type(r) == 'table' and r.err
end

-- First pass: parse the changes and read each row's version, before any
-- write, so that a key of another type fails the call with nothing written.
local ops, rows = {}, {}
local i, k = 6, 2
while i <= #ARGV do
  local o = {op = ARGV[i], head = ARGV[i + 1], tail = ARGV[i + 2], rk = KEYS[k], tk = KEYS[k + 1]}
  local nset = tonumber(ARGV[i + 3])
  o.fs = i + 4
  o.fe = o.fs + 2 * nset - 1
  local ndel = tonumber(ARGV[o.fe + 1])
  o.ds = o.fe + 2
  o.de = o.ds + ndel - 1
  i = o.de + 1
  k = k + 2
  ops[#ops + 1] = o
  if rows[o.rk] == nil then
    local stored = redis.pcall('HGET', o.rk, vf)
    if failed(stored) then
      return redis.error_reply('key ' .. o.rk .. ' is not a row hash (' .. stored.err .. '): another program writes keys of the sink\'s key pattern; delete the key or change the pattern')
    end
    local row = {v = stored, exists = stored ~= false, tomb = false}
    if not stored then
      local t = redis.pcall('GET', o.tk)
      if failed(t) then
        return redis.error_reply('key ' .. o.tk .. ' is not a tombstone (' .. t.err .. '): another program writes keys of the sink\'s tombstone prefix; delete the key or change the prefix')
      end
      row.v, row.tomb = t, t ~= false
    end
    rows[o.rk] = row
  end
end

-- Second pass: apply what is newer than the row's version.
local applied, skipped = 0, 0
for _, o in ipairs(ops) do
  local row = rows[o.rk]
  if newer(row.v, o.head, o.tail) then
    applied = applied + 1
    local v = o.head .. '|' .. o.tail
    if o.op == 'd' then
      if row.exists then redis.call('DEL', o.rk) end
      redis.call('SET', o.tk, v, 'PX', tombttl)
      rows[o.rk] = {v = v, exists = false, tomb = true}
    else
      if o.op == 'r' and row.exists then redis.call('DEL', o.rk) end
      local j = o.fs
      local e = math.min(o.fe, j + 2 * CHUNK - 1)
      redis.call('HSET', o.rk, vf, v, unpack(ARGV, j, e))
      j = e + 1
      while j <= o.fe do
        e = math.min(o.fe, j + 2 * CHUNK - 1)
        redis.call('HSET', o.rk, unpack(ARGV, j, e))
        j = e + 1
      end
      j = o.ds
      while j <= o.de do
        e = math.min(o.de, j + CHUNK - 1)
        redis.call('HDEL', o.rk, unpack(ARGV, j, e))
        j = e + 1
      end
      if ttl > 0 then redis.call('PEXPIRE', o.rk, ttl) end
      if row.tomb then redis.call('DEL', o.tk) end
      rows[o.rk] = {v = v, exists = true, tomb = false}
    end
  else
    skipped = skipped + 1
  end
end
if ARGV[4] == '1' then redis.call('SET', KEYS[1], ARGV[5]) end
return {applied, skipped}
`)
