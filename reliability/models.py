"""The messages of the scenarios."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from pigeon import Redeliver, Retry

ALWAYS = -1

RETRY = Retry(attempts=2, backoff=0.01, max_backoff=0.02)
REDELIVER = Redeliver(delays=(0.05, 0.05))
"""The jobs service's failure policy: two calls in process, then two redeliveries."""
CALLS = RETRY.attempts * (len(REDELIVER.delays) + 1)
"""Calls of an always-failing job before it is dead-lettered: 2 per delivery, 3 deliveries."""


class Job(BaseModel):
    """A job of the work-pool scenarios, known by ``n``.

    Its handler fails ``fails`` calls before one succeeds (``ALWAYS``: every call fails).
    ``pad`` makes it as large as a scenario wants.
    """

    n: int
    fails: int = 0
    pad: str = ""


GOOD_TOKEN = "reliability-good-message"
"""Only the fuzz scenario's own senders put this in a body: no fuzzed body validates as ``Good``."""


class Good(BaseModel):
    """A well-formed message of the fuzz scenario, known by ``n``."""

    model_config = ConfigDict(extra="forbid")

    n: int
    token: Literal["reliability-good-message"]
