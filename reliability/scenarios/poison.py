"""Poison: some jobs always fail, some fail twice then succeed.

Of every 100 jobs, ``always`` fail on every call and ``twice`` fail on their first two calls. The
worker retries twice in process (``Retry``), then has the broker redeliver twice (``Redeliver``),
then dead-letters. Afterwards the dead letters hold exactly the always-failing jobs, each once,
with its error (type, message, calls made, queue), and every other job was handled.
"""

from __future__ import annotations

from pathlib import Path

from pigeon import DecodeError, Message
from reliability.models import ALWAYS, CALLS, Job
from reliability.processes import running
from reliability.result import Result
from reliability.scenarios.workpool import SERVICE, JobRun
from reliability.tally import settled_dead_letters
from reliability.targets import Target


def fails_of(n: int, always: int, twice: int) -> int:
    """How many calls job ``n`` fails: ``always`` and ``twice`` of every 100 jobs."""
    position = n % 100
    if position < always:
        return ALWAYS
    return 2 if position < always + twice else 0


async def poison(
    target: Target,
    workdir: Path,
    *,
    jobs: int = 10_000,
    always: int = 1,
    twice: int = 5,
    concurrency: int = 16,
) -> Result:
    """Enqueue ``jobs`` of which ``always``% always fail and ``twice``% fail twice; check the
    dead letters."""
    run = JobRun("poison", target, workdir)
    fails = {n: fails_of(n, always, twice) for n in range(jobs)}
    doomed = {n for n, count in fails.items() if count == ALWAYS}
    async with running(SERVICE, run.env(concurrency=concurrency)) as service:
        async with target.app() as producer:
            sender = run.sending(producer)
            await sender.run(Job(n=n, fails=count) for n, count in fails.items())
            should_pass = sender.confirmed - doomed
            await run.all_handled(should_pass)
            letters = await settled_dead_letters(
                producer, run.queue, len(sender.confirmed & doomed)
            )
        await run.stop(service)
        rss = service.peak_rss
    run.problems += _check_letters(letters, sender.confirmed & doomed, run.queue)
    handled_doomed = sorted(run.done.numbers().keys() & doomed)
    if handled_doomed:
        run.problems.append(f"always-failing jobs handled: {handled_doomed[:10]}")
    notes = (
        f"{always}% always fail, {twice}% fail twice; {len(doomed)} expected in the dead letters"
    )
    return run.result(letters, rss, notes, must_handle=should_pass)


def _check_letters(letters: list[Message], doomed: set[int], queue: str) -> list[str]:
    """What is wrong with ``letters``, which should be ``doomed``'s jobs, each with its error."""
    problems: list[str] = []
    numbers: list[int] = []
    for letter in letters:
        try:
            job = letter.decode(Job)
        except DecodeError as exc:
            problems.append(f"a dead letter that is not a job: {letter.body[:80]!r}: {exc}")
            continue
        numbers.append(job.n)
        failure = letter.failure
        expected = ("PoisonError", f"job {job.n} always fails", CALLS, queue)
        got = failure and (
            failure.type,
            failure.message,
            failure.attempts,
            failure.queue,
        )
        if got != expected:
            problems.append(f"dead letter of job {job.n}: failure {got}, expected {expected}")
    if sorted(numbers) != sorted(doomed):
        extra, missing = set(numbers) - doomed, doomed - set(numbers)
        repeated = len(numbers) - len(set(numbers))
        problems.append(
            f"dead letters are not the always-failing jobs: {len(missing)} missing "
            f"{sorted(missing)[:10]}, {len(extra)} extra {sorted(extra)[:10]}, {repeated} twice"
        )
    return problems
