"""RPC under load: many requests, ``in_flight`` at a time, against two server processes, one of
which is killed midway.

Every request must end within its deadline (plus ``margin`` for a loaded machine): with a reply,
or raising ``RequestTimeout`` (its server died with it) or ``NoResponders``. Any other outcome,
a request still waiting long after its deadline, or a wrong reply is a problem.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pigeon import App, NoResponders, RequestTimeout
from reliability.processes import running
from reliability.result import Result
from reliability.tally import DoneFile, Stopwatch, settle, unique_name
from reliability.targets import Target

SERVICE = "reliability.services.echo:app"
HANG = 30.0
"""Seconds past its deadline after which a request counts as hung and is abandoned."""


@dataclass
class Calls:
    """How the requests of a run ended."""

    outcomes: Counter[str] = field(default_factory=Counter)
    late: list[float] = field(default_factory=list)
    answered: dict[str, int] = field(default_factory=dict)
    """Requests each server answered: ``killed`` (before it was), ``survivor``."""
    worst: float = float("-inf")
    """The longest a request took past its deadline (negative: all ended before theirs)."""

    @property
    def finished(self) -> int:
        return sum(self.outcomes.values())


async def rpc_under_load(
    target: Target,
    workdir: Path,
    *,
    requests: int = 10_000,
    in_flight: int = 200,
    timeout: float = 5.0,
    margin: float = 1.0,
    delay: float = 0.001,
    kill_at: float = 0.5,
) -> Result:
    """Send ``requests`` with ``in_flight`` at once to two echo servers; kill one once
    ``kill_at`` of them have ended."""
    clock, subject = Stopwatch(), unique_name("rpc")
    done = DoneFile(workdir / f"{subject}.done")
    env = {
        **target.service_env(),
        "RELIABILITY_SUBJECT": subject,
        "RELIABILITY_DELAY": str(delay),
        "RELIABILITY_DONE": str(done.path),
    }
    calls = Calls()
    async with (
        running(SERVICE, env) as first,
        running(SERVICE, env) as second,
        target.app() as client,
    ):
        caller = _Caller(client, subject, timeout, margin, calls)
        sending = asyncio.create_task(caller.run(requests, in_flight))
        await settle(
            lambda: calls.finished >= kill_at * requests or sending.done(),
            lambda: calls.finished,
        )
        answered_before_kill = done.poll()[str(second.pids[0])]
        second.kill(second.pids[0])
        await sending
        await first.stop()
        rss = max(first.peak_rss or 0, second.peak_rss or 0) or None
    calls.answered = {"killed": answered_before_kill, "survivor": done.poll()[str(first.pids[0])]}
    return _result(target, requests, calls, margin, rss, clock.seconds)


class _Caller:
    def __init__(
        self, client: App, subject: str, timeout: float, margin: float, calls: Calls
    ) -> None:
        self._client, self._subject, self._calls = client, subject, calls
        self._timeout, self._margin = timeout, margin

    async def run(self, requests: int, in_flight: int) -> None:
        numbers = iter(range(requests))

        async def lane() -> None:
            for n in numbers:
                await self._one(n)

        await asyncio.gather(*(lane() for _ in range(in_flight)))

    async def _one(self, n: int) -> None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout + HANG):
                reply = await self._client.request(
                    self._subject, n, reply=int, timeout=self._timeout
                )
            outcome = "ok" if reply == n else "wrong reply"
        except (RequestTimeout, NoResponders) as exc:
            outcome = type(exc).__name__
        except TimeoutError:
            outcome = "hung"
        except Exception as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        over = time.monotonic() - started - self._timeout
        self._calls.worst = max(self._calls.worst, over)
        if over > self._margin:
            self._calls.late.append(over)
        self._calls.outcomes[outcome] += 1


def _result(
    target: Target,
    requests: int,
    calls: Calls,
    margin: float,
    rss: int | None,
    seconds: float,
) -> Result:
    allowed = ("ok", "RequestTimeout", "NoResponders")
    wrong = {name: count for name, count in calls.outcomes.items() if name not in allowed}
    problems = [f"{count} requests ended with {name}" for name, count in wrong.items()]
    if calls.late:
        problems.append(
            f"{len(calls.late)} requests ended more than {margin:g}s after their deadline "
            f"(worst {max(calls.late):.2f}s)"
        )
    if not calls.answered["killed"]:
        problems.append(
            "the server killed midway had answered nothing: the scenario showed nothing"
        )
    killed, survivor = calls.answered["killed"], calls.answered["survivor"]
    ends = ", ".join(f"{count:,} {name}" for name, count in sorted(calls.outcomes.items()))
    return Result(
        scenario="rpc under load",
        broker=target.broker,
        sent=requests,
        processed=calls.outcomes["ok"],
        lost=sum(wrong.values()) + len(calls.late),
        duplicated=0,
        dead_lettered=0,
        peak_rss=rss,
        seconds=seconds,
        notes=f"{ends}; latest end {calls.worst:+.2f}s from its deadline; the server SIGKILLed "
        f"midway had answered {killed:,}, the other {survivor:,}",
        problems=problems,
    )
