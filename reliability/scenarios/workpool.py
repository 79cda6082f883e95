"""What the work-pool scenarios share: the jobs service, its settings, and the checks and figures
of a run (every confirmed job handled, no dead letter unless expected, clean stops)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pigeon import App, Message
from reliability.processes import Service
from reliability.result import Result
from reliability.tally import DoneFile, Sender, Stopwatch, settle, unique_name
from reliability.targets import Target

SERVICE = "reliability.services.jobs:app"


@dataclass
class JobRun:
    """One run of a work-pool scenario on ``target``: a fresh queue and done file in
    ``workdir``; ``problems`` collects what went wrong along the way."""

    scenario: str
    target: Target
    workdir: Path
    clock: Stopwatch = field(default_factory=Stopwatch)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.queue = unique_name(self.scenario.replace(" ", "-"))
        self.done = DoneFile(self.workdir / f"{self.queue}.done")
        self.sender: Sender | None = None

    def env(self, **settings: object) -> dict[str, str]:
        """The jobs service's environment: broker, queue, done file, ``RELIABILITY_<SETTING>``."""
        return {
            **self.target.service_env(),
            "RELIABILITY_QUEUE": self.queue,
            "RELIABILITY_DONE": str(self.done.path),
            **{f"RELIABILITY_{name.upper()}": str(value) for name, value in settings.items()},
        }

    def sending(self, app: App, parallel: int = 64) -> Sender:
        """The run's sender of jobs to its queue, through ``app``."""
        self.sender = Sender.enqueuing(app, self.queue, parallel)
        return self.sender

    async def all_handled(self, jobs: set[int] | None = None) -> bool:
        """Wait until every one of ``jobs`` (default: every confirmed job) was handled, or
        handling stalls."""
        expected = self._confirmed() if jobs is None else jobs
        return await settle(lambda: expected.issubset(self.done.numbers()), self.progress)

    def progress(self) -> int:
        return self.done.handled

    async def stop(self, service: Service, what: str = "the worker") -> None:
        """SIGTERM ``service``; a problem unless it drains and exits 0."""
        code = await service.stop()
        if code != 0:
            self.problems.append(f"{what} exited with {code} on SIGTERM:\n{service.log_tail()}")

    def result(
        self,
        letters: list[Message],
        peak_rss: int | None,
        notes: str,
        *,
        must_handle: set[int] | None = None,
        figures: dict[str, float] | None = None,
    ) -> Result:
        """The run's ``Result``: every job of ``must_handle`` (default: every confirmed job)
        handled; no dead letters unless the scenario checked them itself (``must_handle``)."""
        handled = self.done.numbers()
        expected = self._confirmed() if must_handle is None else must_handle
        lost = expected - handled.keys()
        problems = [*self.problems, *(self.sender.problems if self.sender else [])]
        if lost:
            problems.append(f"{len(lost)} jobs never handled, e.g. {sorted(lost)[:10]}")
        if letters and must_handle is None:
            problems.append(f"{len(letters)} jobs dead-lettered, none should be")
        return Result(
            scenario=self.scenario,
            broker=self.target.broker,
            sent=len(self._confirmed()),
            processed=len(handled),
            lost=len(lost),
            duplicated=self.done.duplicates,
            dead_lettered=len(letters),
            peak_rss=peak_rss,
            seconds=self.clock.seconds,
            notes=notes,
            figures=figures or {},
            problems=problems,
        )

    def _confirmed(self) -> set[int]:
        return self.sender.confirmed if self.sender else set()
