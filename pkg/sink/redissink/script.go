package redissink

import (
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/dbsync/dbsync/pkg/sink"
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
local call, pcall, sub, len, unpack, min = redis.call, redis.pcall, string.sub, string.len, unpack, math.min
local vf = ARGV[1]
local ttl = tonumber(ARGV[2])
local tombttl = tonumber(ARGV[3])
local TAIL = ` + strconv.Itoa(sink.VersionTailLen) + `
local CHUNK = 1000

local function failed(r)
  return type(r) == 'table' and r.err
end

-- First pass: find the changes in ARGV and read each row's version (its
-- hash's version field, else its tombstone) before any write, so that a
-- key of another type fails the call with nothing written. Per row key:
-- ver (false: none), exists (the hash), tomb (the tombstone).
local at, ver, exists, tomb = {}, {}, {}, {}
local n, i, nargs = 0, 6, #ARGV
while i <= nargs do
  n = n + 1
  at[n] = i
  local fe = i + 3 + 2 * tonumber(ARGV[i + 3])
  i = fe + 2 + tonumber(ARGV[fe + 1])
  local rk = KEYS[2 * n]
  if ver[rk] == nil then
    local v = pcall('HGET', rk, vf)
    if failed(v) then
      return redis.error_reply('key ' .. rk .. ' is not a row hash (' .. v.err .. '): another program writes keys of the sink\'s key pattern; delete the key or change the pattern')
    end
    exists[rk], tomb[rk] = v ~= false, false
    if not v then
      local tk = KEYS[2 * n + 1]
      v = pcall('GET', tk)
      if failed(v) then
        return redis.error_reply('key ' .. tk .. ' is not a tombstone (' .. v.err .. '): another program writes keys of the sink\'s tombstone prefix; delete the key or change the prefix')
      end
      tomb[rk] = v ~= false
    end
    ver[rk] = v
  end
end

-- Second pass: apply each change newer than its row's version: none, one
-- of another head (binlog history), or a lower tail.
local applied = 0
for c = 1, n do
  local i = at[c]
  local op, head, tail = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local rk, tk = KEYS[2 * c], KEYS[2 * c + 1]
  local stored = ver[rk]
  local apply = true
  if stored then
    local sl = len(stored)
    apply = sl <= TAIL or sub(stored, 1, sl - TAIL - 1) ~= head or tail > sub(stored, sl - TAIL + 1)
  end
  if apply then
    applied = applied + 1
    local v = head .. '|' .. tail
    ver[rk] = v
    if op == 'd' then
      if exists[rk] then call('DEL', rk) end
      call('SET', tk, v, 'PX', tombttl)
      exists[rk], tomb[rk] = false, true
    else
      if op == 'r' and exists[rk] then call('DEL', rk) end
      local fs = i + 4
      local fe = fs + 2 * tonumber(ARGV[i + 3]) - 1
      local e = min(fe, fs + 2 * CHUNK - 1)
      call('HSET', rk, vf, v, unpack(ARGV, fs, e))
      local j = e + 1
      while j <= fe do
        e = min(fe, j + 2 * CHUNK - 1)
        call('HSET', rk, unpack(ARGV, j, e))
        j = e + 1
      end
      j = fe + 2
      local de = j + tonumber(ARGV[fe + 1]) - 1
      while j <= de do
        e = min(de, j + CHUNK - 1)
        call('HDEL', rk, unpack(ARGV, j, e))
        j = e + 1
      end
      if ttl > 0 then call('PEXPIRE', rk, ttl) end
      if tomb[rk] then call('DEL', tk) end
      exists[rk], tomb[rk] = true, false
    end
  end
end
if ARGV[4] == '1' then call('SET', KEYS[1], ARGV[5]) end
return {applied, n - applied}
`)
