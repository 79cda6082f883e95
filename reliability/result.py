"""What a scenario reports: one ``Result`` per run, and the table ``make soak`` prints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

MIB = 1024 * 1024


@dataclass(frozen=True)
class Result:
    """The figures of one scenario run on one broker.

    ``sent`` counts messages the broker confirmed (enqueue returned, a request was sent);
    ``processed`` those handled at least once; ``lost`` confirmed ones never handled (for RPC:
    requests that neither succeeded nor failed as allowed within their deadline);
    ``duplicated`` extra handler runs; ``peak_rss`` the largest peak resident set of the
    scenario's ``pigeon run`` processes, in bytes. ``problems`` lists every broken guarantee in
    words: a passing run has none. ``notes`` tells what is particular to the scenario, in words;
    ``figures`` the same as numbers.
    """

    scenario: str
    broker: str
    sent: int
    processed: int
    lost: int
    duplicated: int
    dead_lettered: int
    peak_rss: int | None
    seconds: float
    notes: str = ""
    figures: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every guarantee held."""
        return not self.problems

    def explain(self) -> str:
        """The result on one line and its problems below it: an assertion message."""
        lines = [format_table([self])]
        lines += [f"  problem: {problem}" for problem in self.problems]
        return "\n".join(lines)


COLUMNS = ("broker", "sent", "processed", "lost", "duplicated", "dead-lettered", "peak RSS", "time")


def row(result: Result) -> tuple[str, ...]:
    """The table cells of ``result``, in ``COLUMNS`` order."""
    rss = "-" if result.peak_rss is None else f"{result.peak_rss / MIB:.0f} MiB"
    return (
        result.broker,
        f"{result.sent:,}",
        f"{result.processed:,}",
        f"{result.lost:,}",
        f"{result.duplicated:,}",
        f"{result.dead_lettered:,}",
        rss,
        f"{result.seconds:.1f} s",
    )


def format_table(results: Sequence[Result]) -> str:
    """A plain-text table of ``results`` (one scenario), notes and verdict in a last column."""
    header = (*COLUMNS, "notes")
    rows = [(*row(r), _verdict(r)) for r in results]
    widths = [max(len(line[i]) for line in (header, *rows)) for i in range(len(COLUMNS))]

    def line(cells: Sequence[str]) -> str:
        left = cells[0].ljust(widths[0])
        right = [cell.rjust(width) for cell, width in zip(cells[1:-1], widths[1:], strict=True)]
        return "  ".join([left, *right, cells[-1]]).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


def format_markdown(results: Sequence[Result]) -> str:
    """The same table in Markdown, for ``docs/reliability.md``."""
    header = (*COLUMNS, "notes")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join((*row(r), _verdict(r))) + " |" for r in results]
    return "\n".join(lines)


def _verdict(result: Result) -> str:
    count = len(result.problems)
    verdict = "ok" if result.ok else f"FAILED ({count} problem{'s' if count > 1 else ''})"
    return f"{verdict}; {result.notes}" if result.notes else verdict
