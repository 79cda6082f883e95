"""Bad input: fuzzed messages from plain clients into a subscriber, an rpc server and a worker.

``pigeon run reliability.services.fuzz:app`` serves one handler of each pattern. For every
hypothesis-generated ``BadInput``, a plain client (nats-py / aio-pika) sends it as an event, a
job and a request, and a pigeon App sends a good event, job and request beside it. Afterwards:

- the service never crashed (it still runs, logged no crash, and exits 0 on SIGTERM);
- every bad job the broker stored is in the dead letters, with its error;
- every bad request got an error reply (``RemoteError`` to a pigeon caller), but for those whose
  deadline header says their time has passed, which a server drops unanswered;
- every good message was handled, every good request answered.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pigeon import App, Message
from reliability.fuzz_cases import BadInput, amqp_inputs, draw, nats_inputs
from reliability.models import GOOD_TOKEN, Good
from reliability.processes import Service, running
from reliability.raw import CASE, RawClient, raw_client
from reliability.result import Result
from reliability.tally import DoneFile, Stopwatch, settle, settled_dead_letters, unique_name
from reliability.targets import Target

SERVICE = "reliability.services.fuzz:app"
CRASH_SIGNS = re.compile(
    r"^\S+ \S+ [A-Z]+ (pigeon: handler task failed|Task exception was never retrieved"
    r"|pigeon: disconnected from|Unhandled exception)"
)
"""Log lines (``pigeon run``'s format: date, time, level, message) that tell of a crash."""
REJECTED = re.compile(r"^\S+ \S+ ERROR pigeon: rejected a message of")
"""RabbitMQ: a message whose properties pigeon cannot read, rejected to the dead-letter exchange."""


@dataclass
class Outcomes:
    """What happened to the messages of a fuzz run."""

    cases: int = 0
    bad_jobs: set[int] = field(default_factory=set)
    requests: Counter[str] = field(default_factory=Counter)
    unanswered: list[int] = field(default_factory=list)
    good_replies: int = 0
    letters: list[Message] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


async def bad_input(
    target: Target,
    workdir: Path,
    *,
    cases: int = 1_000,
    seed: int | None = None,
    lanes: int = 8,
    timeout: float = 3.0,
) -> Result:
    """Send ``cases`` fuzzed inputs (each as an event, a job and a request) with good messages
    around them; check where each ended."""
    seed = random.randrange(2**32) if seed is None else seed
    strategy = nats_inputs() if target.broker.startswith("nats") else amqp_inputs()
    inputs = draw(strategy, cases, seed)
    clock, subject = Stopwatch(), unique_name("fuzz")
    queue = f"{subject}.jobs"
    done = DoneFile(workdir / f"{subject}.done")
    env = {**target.service_env(), "RELIABILITY_SUBJECT": subject, "RELIABILITY_QUEUE": queue}
    outcomes = Outcomes(cases=len(inputs))
    async with (
        running(SERVICE, {**env, "RELIABILITY_DONE": str(done.path)}) as service,
        target.app() as good,
        raw_client(target.broker, target.url, subject, queue, timeout) as raw,
    ):
        await _Sender(raw, good, subject, queue, outcomes).run(inputs, lanes)
        expected = _good_lines(outcomes.cases)
        await settle(lambda: expected.issubset(done.poll()), lambda: done.handled)
        outcomes.letters = await settled_dead_letters(good, queue, len(outcomes.bad_jobs))
        outcomes.problems += _crash_signs(service)
        code = await service.stop()
        if code != 0:
            outcomes.problems.append(f"the service exited with {code} on SIGTERM")
    label = f"{len(inputs)} fuzzed inputs (seed {seed})"
    return _result(target, label, outcomes, done, service, clock.seconds)


def _good_lines(cases: int) -> set[str]:
    """The done file's lines once every good event and job was handled."""
    return {f"{kind} {n}" for kind in ("event", "job") for n in range(cases)}


def _result(
    target: Target,
    label: str,
    outcomes: Outcomes,
    done: DoneFile,
    service: Service,
    seconds: float,
) -> Result:
    cases = outcomes.cases
    expected = _good_lines(cases)
    handled = expected & done.poll().keys()
    problems = outcomes.problems + _check_letters(outcomes.letters, outcomes.bad_jobs)
    if handled != expected:
        problems.append(f"good messages not handled: {sorted(expected - handled)[:10]}")
    if outcomes.unanswered:
        problems.append(f"bad requests without an error reply: {outcomes.unanswered[:10]}")
    good_done = len(handled) + outcomes.good_replies
    missing = 3 * cases - good_done + len(outcomes.unanswered) + _missing(outcomes)
    return Result(
        scenario="bad input",
        broker=target.broker,
        sent=6 * cases,
        processed=good_done,
        lost=missing,
        duplicated=done.duplicates,
        dead_lettered=len(outcomes.letters),
        peak_rss=service.peak_rss,
        seconds=seconds,
        notes=_notes(label, outcomes, service),
        problems=problems,
    )


class _Sender:
    """Sends each input as a bad event, job and request, each followed by a good one."""

    def __init__(
        self, raw: RawClient, good: App, subject: str, queue: str, outcomes: Outcomes
    ) -> None:
        self._raw, self._good, self._outcomes = raw, good, outcomes
        self._subject, self._queue = subject, queue

    async def run(self, inputs: Sequence[BadInput], lanes: int) -> None:
        numbered = iter(enumerate(inputs))

        async def lane() -> None:
            for number, case in numbered:
                await self._one(number, case)

        await asyncio.gather(*(lane() for _ in range(lanes)))

    async def _one(self, number: int, case: BadInput) -> None:
        good, outcomes = Good(n=number, token=GOOD_TOKEN), self._outcomes
        await self._raw.event(case, number)
        await self._good.publish(f"{self._subject}.events", good)
        if await self._raw.job(case, number):
            outcomes.bad_jobs.add(number)
        await self._good.enqueue(self._queue, good)
        answer = await self._raw.request(case, number)
        outcomes.requests[answer] += 1
        if answer != "error" and not (answer == "no reply" and case.expired):
            outcomes.unanswered.append(number)
        try:
            reply = await self._good.request(f"{self._subject}.rpc", good, reply=int, timeout=10)
        except Exception as exc:
            outcomes.problems.append(f"good request {number} failed: {exc!r}")
        else:
            outcomes.good_replies += reply == number


def _check_letters(letters: list[Message], bad_jobs: set[int]) -> list[str]:
    cases = Counter(letter.headers.get(CASE, "?") for letter in letters)
    expected = Counter(str(n) for n in bad_jobs)
    problems = []
    if cases != expected:
        missing, extra = expected - cases, cases - expected
        problems.append(
            f"dead letters do not match the bad jobs: missing {sorted(missing)[:10]}, "
            f"unexpected or repeated {sorted(extra)[:10]}"
        )
    unexplained = [letter.headers.get(CASE) for letter in letters if letter.failure is None]
    if unexplained:
        problems.append(f"dead letters without a recorded failure: {unexplained[:10]}")
    return problems


def _missing(outcomes: Outcomes) -> int:
    """Bad jobs the broker stored that are not in the dead letters."""
    found = {letter.headers.get(CASE) for letter in outcomes.letters}
    return sum(str(n) not in found for n in outcomes.bad_jobs)


def _crash_signs(service: Service) -> list[str]:
    problems = []
    if service.returncode is not None:
        problems.append(f"the service died (exit {service.returncode}):\n{service.log_tail()}")
    for line in service.lines:
        if CRASH_SIGNS.match(line):
            problems.append(f"the service logged: {line}")
    return problems


def _notes(label: str, outcomes: Outcomes, service: Service) -> str:
    letters = outcomes.letters
    errors = Counter(letter.failure.type for letter in letters if letter.failure)
    kinds = ", ".join(f"{count} {name}" for name, count in errors.most_common())
    answers = ", ".join(f"{count} {name}" for name, count in outcomes.requests.most_common())
    rejected = sum(bool(REJECTED.match(line)) for line in service.lines)
    dropped = outcomes.cases - len(outcomes.bad_jobs)
    return (
        f"{label} as events, jobs and requests; {len(outcomes.bad_jobs)} bad jobs stored"
        + (f" ({dropped} dropped by the broker as duplicates)" if dropped else "")
        + f", dead letters: {kinds or 'none'}; bad requests: {answers}"
        + (" (each without one had a passed deadline)" if outcomes.requests["no reply"] else "")
        + f"; {rejected} messages pigeon could not read were rejected"
    )
