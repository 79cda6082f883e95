"""The names pigeon gives NATS objects from users' names: queue groups, streams and consumers.

Two distinct user names never get one NATS name silently. A queue group is the subject and the
group name together, escaped so that it can be read back. A stream or consumer name keeps the
spelling earlier versions gave it wherever that was unambiguous, so existing streams and durable
consumers are found again; where that spelling would lose characters that tell two names apart,
or pass NATS's 255-byte limit on names, it is shortened if need be and ends in ``_`` and 12 hex
digits of the SHA-256 of the user's name (48 bits: distinct names meet only by design).
"""

from __future__ import annotations

import hashlib
import re

MAX_NAME_BYTES = 255
"""The longest stream or consumer name nats-server accepts (``JSMaxNameLen``)."""

DIGEST_CHARS = 12
"""Hex digits of the SHA-256 of a user's name that end a stream or consumer name made unique."""

GROUP_SEPARATOR = ":"
"""Between the subject and the group name in a queue group's name."""

_KEPT = re.compile(r"[A-Za-z0-9_-]+")
"""Durable names that name their consumer as they are: letters, digits, ``_`` and ``-``."""

_PLAIN_SUBJECT = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
"""Subjects whose stream names spell them faithfully: dots become ``_``, and nothing else
changes, so no two of them meet."""

_ESCAPED = frozenset("%" + GROUP_SEPARATOR)


def queue_group(subject: str, group: str) -> str:
    """The NATS queue group of pigeon's group ``group`` on ``subject``: ``<subject>:<group>``,
    with ``%``, ``:``, whitespace and control characters of ``group`` written as ``%XX`` (UTF-8).

    The NATS server shares a message among the queue subscribers of one queue group name across
    every subscription that matches it, so the name must tell subjects apart (two patterns that
    both match an event are two groups); subjects have no whitespace, and the escaped group no
    ``:``, so the name is read back by splitting at its last ``:``, and never equals
    ``pigeon-rpc``, the rpc servers' queue group."""
    escaped = "".join(_escape(char) for char in group)
    return f"{subject}{GROUP_SEPARATOR}{escaped}"


def _escape(char: str) -> str:
    if char in _ESCAPED or char.isspace() or not char.isprintable():
        return "".join(f"%{byte:02X}" for byte in char.encode())
    return char


def name_token(name: str) -> str:
    """``name`` spelled with the characters stream and consumer names take, as every version of
    pigeon spelled it: ``*`` as ``STAR``, ``>`` as ``REST``, any character other than letters,
    digits, ``_`` and ``-`` as ``_``. Distinct names may meet (``a.b``, ``a_b``)."""
    spelled = name.replace("*", "STAR").replace(">", "REST")
    return re.sub(r"[^A-Za-z0-9_-]", "_", spelled)


def consumer_name(durable: str) -> str:
    """The JetStream consumer of the durable subscription ``durable``: ``durable`` itself when it
    is made of letters, digits, ``_`` and ``-`` (as before) and fits; else its ``name_token``,
    shortened to fit, ``_`` and a digest (``audit.v1`` -> ``audit_v1_<12 hex>``)."""
    if _KEPT.fullmatch(durable) and len(durable) <= MAX_NAME_BYTES:
        return durable
    return unique(name_token(durable), durable, MAX_NAME_BYTES)


def event_stream(subject: str) -> str:
    """The name of the stream pigeon makes for durable subscriptions of ``subject``:
    ``PIGEON_EV_`` and the subject's ``name_token``, with a digest unless the subject is made of
    letters, digits and ``-`` between dots (``orders.created`` -> ``PIGEON_EV_orders_created``).
    Streams are found by the subjects they store, not by name, so earlier names stay in use."""
    prefix = "PIGEON_EV_"
    room = MAX_NAME_BYTES - len(prefix)
    token = name_token(subject)
    if _PLAIN_SUBJECT.fullmatch(subject) and len(token) <= room:
        return prefix + token
    return prefix + unique(token, subject, room)


def queue_token(queue: str, room: int) -> str:
    """The token of work queue ``queue`` in its streams' names, at most ``room`` bytes: its
    ``name_token`` as before (queues whose tokens meet get ``DeclarationConflict``: the stream
    stores the other's subject), shortened with a digest only where it would not fit."""
    token = name_token(queue)
    return token if len(token) <= room else unique(token, queue, room)


def unique(token: str, name: str, room: int) -> str:
    """``token`` cut to leave room for ``_`` and the digest of ``name``, then both: at most
    ``room`` bytes (``token`` is ASCII)."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:DIGEST_CHARS]
    return f"{token[: room - DIGEST_CHARS - 1]}_{digest}"
