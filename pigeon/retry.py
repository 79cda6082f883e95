"""Failure policies of a worker: ``Retry`` in process, ``Redeliver`` through the broker.

Decode errors and ``Reject`` are never retried by either (``NEVER_RETRY``).
"""

from __future__ import annotations

import contextvars
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from pigeon.delays import MAX_DELAY, check_delay
from pigeon.errors import ConfigurationError, DecodeError, Reject
from pigeon.transports.runner import started_in

NEVER_RETRY: tuple[type[BaseException], ...] = (DecodeError, Reject)
"""Errors that skip in-process retries and broker-side redelivery: poison stays poison."""


def compute_backoff(
    failed_calls: int, *, backoff: float, max_backoff: float, jitter: float, rand: float
) -> float:
    """Seconds to wait after the ``failed_calls``-th failed call: exponential, capped, jittered.

    ``backoff * 2.0 ** (failed_calls - 1)``, capped at ``max_backoff``, then stretched by up to
    ``jitter`` (a fraction) times ``rand`` in [0, 1). Pure: the caller supplies the randomness.
    """
    base = min(max_backoff, backoff * 2.0 ** (failed_calls - 1))
    return base * (1.0 + jitter * rand)


@dataclass(frozen=True, slots=True)
class Retry:
    """Call a failing handler again, in process, holding the message, up to ``attempts`` calls.

    ``attempts`` counts the first call: ``Retry(attempts=3)`` calls at most three times. Between
    calls it waits ``backoff * 2**n`` seconds (n = 0, 1, ...), capped at ``max_backoff``, plus up to
    ``jitter`` of that at random so that replicas do not retry in step.
    """

    attempts: int = 3
    backoff: float = 0.1
    max_backoff: float = 5.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        attempts = self.attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ConfigurationError(f"Retry(attempts={attempts!r}): attempts must be an int >= 1")
        numbers = (self.backoff, self.max_backoff, self.jitter)
        if not all(_is_number(n) for n in numbers) or not (
            0 <= self.backoff <= self.max_backoff <= MAX_DELAY and 0 <= self.jitter <= 1
        ):
            raise ConfigurationError(
                f"{self!r}: need 0 <= backoff <= max_backoff <= {MAX_DELAY:.0f} seconds (100 "
                "years) and 0 <= jitter <= 1, none of them NaN (max_backoff is 5.0 unless given: "
                "give it with a longer backoff)"
            )

    def delay(self, failed_calls: int) -> float:
        """Seconds to wait after the ``failed_calls``-th failed call."""
        return compute_backoff(
            failed_calls,
            backoff=self.backoff,
            max_backoff=self.max_backoff,
            jitter=self.jitter,
            rand=random.random(),
        )

    async def call(self, fn: Callable[[int], Coroutine[Any, Any, None]]) -> None:
        """Call ``fn(call_number)`` until it returns, ``attempts`` run out, or it raises a
        ``NEVER_RETRY`` error. Re-raises the last error. Each call after the first runs in a
        fresh copy of the context the first started in: a context variable a failed call set is
        not seen by the next."""

        from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

        # imported here: tenacity costs ``import pigeon`` ~4 ms and most Apps never retry

        def wait(state: RetryCallState) -> float:
            return self.delay(state.attempt_number)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait,
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        started = contextvars.copy_context()
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                if number == 1:
                    await fn(number)
                else:
                    rest = started_in(started.copy(), fn(number))
                    if rest is not None:  # the call waited: the rest of it, in its context too
                        await rest


@dataclass(frozen=True, slots=True)
class Redeliver:
    """After in-process retries fail, hand the message back to the broker to deliver again later.

    ``Redeliver(delays=(1, 10))`` redelivers twice, after 1 s then after 10 s; a message that still
    fails is dead-lettered. The worker's slot is free while it waits, and the delivery count lives
    on the broker, so it survives restarts and is shared by replicas.
    """

    delays: tuple[float, ...] = (1.0, 10.0, 60.0)

    def __post_init__(self) -> None:
        if not self.delays:
            raise ConfigurationError("Redeliver(delays=()): give one or more delays, in seconds")
        for delay in self.delays:
            check_delay(delay, f"Redeliver(delays={self.delays!r})")

    def delay_after(self, delivery: int) -> float | None:
        """Delay before the next delivery after delivery number ``delivery`` failed; ``None`` when
        the delays are used up and the message should be dead-lettered."""
        if delivery <= len(self.delays):
            return float(self.delays[delivery - 1])
        return None


def _retryable(error: BaseException) -> bool:
    """An ordinary failure, not a ``NEVER_RETRY`` one, and not a cancellation (a shutdown cutting
    the handler off must end the retries, not start the next call)."""
    return isinstance(error, Exception) and not isinstance(error, NEVER_RETRY)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
