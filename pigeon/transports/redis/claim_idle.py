"""The ``claim_idle`` of a stream read with claims (a work queue, a durable subscription) is
recorded with it, since whoever claims decides: every reader must renew its claims more often
than any other claims them. The first reader to declare the stream records its App's value
(``CLAIM_IDLE`` if it sets none, ``OLDER_CLAIM_IDLE`` for a stream an older pigeon made, which
recorded none); a reader that sets none adopts the recorded one, one that sets another gets
``DeclarationConflict`` (``conflict``). The declaring scripts (``topology`` for work queues,
``events`` for durable subscriptions) share the Lua helpers ``CLAIM_IDLE_LUA``.
"""

from __future__ import annotations

from pigeon.errors import DeclarationConflict

CLAIM_IDLE = 5.0
"""Seconds after which a silent reader's entries are claimed, for a work queue or durable
subscription first declared by an App that does not set ``claim_idle`` (live readers renew
their claims every third of it)."""

MIN_CLAIM_IDLE = 1.0
"""The least ``claim_idle``, in seconds: see ``CLAIM_IDLE_FLOOR``."""

CLAIM_IDLE_FLOOR = (
    "live workers renew their claims every third of it, on the event loop: below 1 s, a loop "
    "held up for a few hundred ms by a GC pause, CPU work or a loaded machine lets another "
    "worker take live jobs; idle jobs are looked for only once a second anyway"
)
"""Why ``claim_idle`` is at least ``MIN_CLAIM_IDLE``, as ``ConfigurationError`` says it."""

OLDER_CLAIM_IDLE = 30.0
"""The claim idle of a work queue or durable subscription made by a pigeon that recorded none
(its workers or subscribers, which may still run, renew their claims every 10 s)."""

UNSET = "unset"
"""The claim idle a producer records for a queue it creates: none yet, its first worker records
one (a queue with a delivery limit and no claim idle at all was declared by an older pigeon)."""

Differing = list[tuple[str, str, str]]
"""Settings a stream has otherwise than an App declares: (name, the stream's, the App's)."""


def milliseconds(seconds: float) -> int:
    """``seconds`` in whole milliseconds, at least 1."""
    return max(1, round(seconds * 1000))


CLAIM_IDLE_LUA = f"""
local function other_claim_idle(recorded, given)
  return recorded and given ~= '' and recorded ~= given
end
local function record_claim_idle(settings, given, older)
  local idle = given
  if idle == '' then
    idle = older and '{milliseconds(OLDER_CLAIM_IDLE)}' or '{milliseconds(CLAIM_IDLE)}'
  end
  redis.call('HSET', settings, 'claim_idle_ms', idle)
  return idle
end
local function create_group(stream, group)
  local created = redis.pcall('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
  if type(created) == 'table' and created.err then
    if string.find(created.err, 'BUSYGROUP') then return true end
    error(created)
  end
  return false
end
"""
"""Lua helpers of the declaring scripts, all in ms: whether the ``recorded`` claim idle (or
``false``) differs from the App's ``given`` one (empty: not set); record ``given`` in the hash
``settings``, else ``OLDER_CLAIM_IDLE`` for an ``older`` stream, else ``CLAIM_IDLE``; make a
consumer group reading from the first entry (and its stream): true if it existed already."""


def claim_idle_ms(recorded: str, given: int | None) -> int:
    """A stream's claim idle in ms, from the ``recorded`` one (ms; ``UNSET``, or empty for a
    stream an older pigeon made) and the App's (``None`` if not set)."""
    if recorded.isdigit():
        return int(recorded)
    return given or milliseconds(CLAIM_IDLE if recorded == UNSET else OLDER_CLAIM_IDLE)


def differing_claim_idle(recorded: str, given: int | None) -> Differing:
    """The ``recorded`` claim idle (ms; ``UNSET`` or empty: none) if the App's ``given`` one
    (ms; ``None``: not set) is another, as ``conflict`` names them."""
    if recorded.isdigit() and given and recorded != str(given):
        return [("claim_idle", f"{int(recorded) / 1000:g}s", f"{given / 1000:g}s")]
    return []


def conflict(
    what: str, differing: Differing, noun: str, members: str, key: str
) -> DeclarationConflict:
    """The error for ``what`` (``work queue 'q' exists on <url>``), whose ``differing``
    settings are recorded in the hash ``key``: it names both values and says how to agree, or
    how to change the ``noun``'s (stop its ``members``, delete ``key``, start them again)."""
    have = ", ".join(f"{name}={value}" for name, value, _ in differing)
    want = ", ".join(f"{name}={value}" for name, _, value in differing)
    names = " and ".join(name for name, _, _ in differing)
    unset = f" (or leave claim_idle unset: the {noun}'s is used)" if "claim_idle" in names else ""
    return DeclarationConflict(
        f"{what} with {have}, this App declares {want}; give every App of the {noun} the same "
        f"{names}{unset}, or, to change the {noun}'s, stop its {members}, delete the key "
        f"{key!r} and start them with the new settings"
    )
