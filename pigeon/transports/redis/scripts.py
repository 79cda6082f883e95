"""The Lua scripts of stream consumers (see ``consumer``), registered once per client.

Every script that reads a queue's keys gets ``KEYS[1]`` the stream, ``KEYS[2]`` its delayed set
and, for work queues, ``KEYS[3]`` its dead-letter stream. No script may stop a queue for good:
a delayed job that cannot go back onto its stream (Lua passes at most about 8,000 values to one
command, and another client may have written anything) is dead-lettered with the failure type
``Unmovable`` instead of failing every fetch after it.
"""

from __future__ import annotations

from redis.asyncio import Redis

from pigeon.transports.redis.topology import MATCHES_LUA

UNMOVABLE = "Unmovable"
"""The failure type of a delayed job that could not go back onto its stream."""

_PROMOTE = f"""
local envelope_fields = {{['body'] = true, ['content-type'] = true, ['message-id'] = true,
  ['correlation-id'] = true, ['reply-to'] = true, ['timestamp'] = true}}
local function move(member)
  local job = cmsgpack.unpack(member)
  redis.call('XADD', KEYS[1], '*', unpack(job[2]))
end
local function bury(member, why, queue, failed_at)
  if not KEYS[3] then return end  -- a durable subscription: nowhere to keep it
  local entry, headers = {{'body', member}}, 0
  local ok, job = pcall(cmsgpack.unpack, member)
  if ok and type(job) == 'table' and type(job[2]) == 'table' then
    entry = {{}}
    local fields = job[2]
    for i = 1, #fields - 1, 2 do
      if envelope_fields[fields[i]] then
        entry[#entry + 1] = fields[i]
        entry[#entry + 1] = fields[i + 1]
      else headers = headers + 1 end
    end
    why = 'it has ' .. headers .. ' headers, over the limit (' .. why .. ')'
  else
    why = 'it is not a job pigeon wrote (' .. why .. ')'
  end
  redis.call('XADD', KEYS[3], '*', 'x-pigeon-error-type', '{UNMOVABLE}',
    'x-pigeon-error-message', 'could not go back onto the queue: ' .. why,
    'x-pigeon-attempts', '0', 'x-pigeon-queue', queue, 'x-pigeon-failed-at', failed_at,
    unpack(entry))
end
local function promote(queue, failed_at)
  local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms(), 'LIMIT', 0, 100)
  for _, member in ipairs(due) do
    local ok, err = pcall(move, member)
    if not ok then
      if type(err) == 'table' then err = err.err end
      bury(member, tostring(err), queue, failed_at)
    end
    redis.call('ZREM', KEYS[2], member)
  end
  local after = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if after[2] then return math.max(0, tonumber(after[2]) - now_ms()) end
  return -1
end
"""
"""Moves due delayed jobs onto the stream; returns the ms until the next is due, or -1."""

_FETCH = (
    MATCHES_LUA
    + _PROMOTE
    + """
local wait = promote(ARGV[7], ARGV[8])
local group, consumer, count = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out, cursor, claim = {}, ARGV[5], ARGV[6] == '1'
if #redis.call('XPENDING', KEYS[1], group, '-', '+', 1, ARGV[9]) > 0 then
  claim = true  -- entries given back at close: before newer ones
end
local budget = 10000  -- entries XAUTOCLAIM may look at (ten times its COUNT a call)
while claim and #out < count and budget > 0 do
  local claimed = redis.call('XAUTOCLAIM', KEYS[1], group, consumer, ARGV[4], cursor,
                             'COUNT', count - #out)
  cursor, budget = claimed[1], budget - 10 * (count - #out)
  for _, entry in ipairs(claimed[2]) do
    if entry[2] then  -- Redis 6.2 lists entries deleted meanwhile with no fields
      local info = redis.call('XPENDING', KEYS[1], group, entry[1], entry[1], 1)
      out[#out + 1] = {entry[1], entry[2], info[1][4]}
    end
  end
  if cursor == '0-0' then break end
end
local claimed = #out
if #out < count then
  local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count - #out,
                          'STREAMS', KEYS[1], '>')
  if read then
    for _, entry in ipairs(read[1][2]) do out[#out + 1] = {entry[1], entry[2], 1} end
  end
end
return {out, wait, cursor, claimed}
"""
)
"""ARGV: group, consumer, free slots, claim_idle ms, XAUTOCLAIM cursor, whether to claim (1/0),
queue name and failed-at time (for an unmovable job), the consumer holding given-back entries
(claimed whenever there are any). Claims scan the pending entries
from the cursor until the free slots are filled, the scan wraps, or 10,000 were looked at.
Returns the entries (id, fields, delivery count), the ms until a delayed job is due (-1:
none), the cursor and how many of the entries were claimed."""

_PROMOTE_ONLY = MATCHES_LUA + _PROMOTE + "return promote(ARGV[1], ARGV[2])"

_DEFER = (
    MATCHES_LUA
    + """
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if entry[1] then
  local fields = {}
  local old = entry[1][2]
  for i = 1, #old, 2 do
    if old[i] ~= 'x-pigeon-delivery' and old[i] ~= 'x-pigeon-returns' then
      fields[#fields + 1] = old[i]
      fields[#fields + 1] = old[i + 1]
    end
  end
  fields[#fields + 1] = 'x-pigeon-delivery'
  fields[#fields + 1] = ARGV[4]
  fields[#fields + 1] = 'x-pigeon-returns'
  fields[#fields + 1] = ARGV[5]
  local due = now_ms() + tonumber(ARGV[3])
  redis.call('ZADD', KEYS[2], due, cmsgpack.pack({ARGV[2], fields}))
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
"""
)

_SCHEDULE = (
    MATCHES_LUA
    + """
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[1]), cmsgpack.pack({ARGV[2], fields}))
"""
)
"""Stores a job in a queue's delayed set, due ``ARGV[1]`` ms from the server's now: jobs
enqueued with a delay wait beside delayed redeliveries, promoted by any worker's fetch."""

_KEEP = """
for i = 3, #ARGV do
  local info = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if info[1] and info[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  end
end
"""

_GIVE_BACK = """
local held = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 100000, ARGV[2])
for _, info in ipairs(held) do
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, info[1], 'IDLE', ARGV[4], 'JUSTID')
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return #held
"""

_BEAT = (
    MATCHES_LUA
    + """
local now = now_ms()
local window = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + window, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('PTTL', KEYS[1]) < window then redis.call('PEXPIRE', KEYS[1], window) end
"""
)
"""A consumer's heartbeat: ``ARGV[1]`` (its name) counts as live in ``KEYS[1]`` (the queue's
consumers) for ``ARGV[2]`` ms of the server's clock; members past their time are removed."""


class Scripts:
    """The Lua scripts of stream consumers, registered once per client."""

    def __init__(self, redis: Redis) -> None:
        self.fetch = redis.register_script(_FETCH)
        self.promote = redis.register_script(_PROMOTE_ONLY)
        self.defer = redis.register_script(_DEFER)
        self.schedule = redis.register_script(_SCHEDULE)
        self.keep = redis.register_script(_KEEP)
        self.give_back = redis.register_script(_GIVE_BACK)
        self.beat = redis.register_script(_BEAT)
