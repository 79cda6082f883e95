"""The scaling suite's curves in one PNG (matplotlib, ``pip install -e '.[bench]'``): costs against
subscriptions, against requests in flight and a work pool's concurrency, ``pigeon run --workers``,
and resident memory. ``Results`` is what ``benchmarks.scaling`` measures or saves."""

from __future__ import annotations

from typing import Any

Results = dict[str, Any]
"""``subscriptions`` (case -> value per size, with ``sizes``), ``load`` (row -> value per level),
``workers`` (row -> value for 1 and 2 processes), ``rss`` (label -> ``{"mib": ...}``)."""


def plot(results: Results, path: str, before: dict[str, list[float]] | None = None) -> None:
    """Draw ``results`` to ``path``; ``before`` (an older pigeon's subscription cases, by case)
    dashed beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 3, figsize=(15, 8.4))
    _subscriptions(axes[0][0], results, before)
    load = results.get("load", {})
    from benchmarks.scaling_load import CONCURRENCY, IN_FLIGHT

    _levels(axes[0][1], "RPC: requests in flight", IN_FLIGHT, load, ("rpc",), "microseconds")
    _levels(axes[0][2], "work pool: concurrency", CONCURRENCY, load, ("work pool (",), "")
    io_bound = "work pool, 1 ms I/O a job: concurrency"
    _levels(axes[1][0], io_bound, CONCURRENCY, load, ("work pool,",), "jobs per second")
    workers = results.get("workers", {})
    rates = workers.get("pigeon run --workers (jobs/s)", [])
    cpu = workers.get("pigeon run --workers, CPU (us/job)", [0.0] * len(rates))
    names = [f"{n} worker{'s' if n > 1 else ''}, {c:,.0f} us CPU/job" for n, c in enumerate(cpu, 1)]
    _bars(axes[1][1], "pigeon run --workers (NATS), jobs/s", {"jobs/s": rates}, names)
    rss = {label: row["mib"] for label, row in results.get("rss", {}).items()}
    _bars(axes[1][2], "resident memory growth (MiB)", {"": list(rss.values())}, list(rss))
    figure.suptitle("pigeon: costs as the work grows (memory transport unless said)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def _subscriptions(axis: Any, results: Results, before: dict[str, list[float]] | None) -> None:
    sizes = results.get("sizes", [])
    for index, (case, values) in enumerate(results.get("subscriptions", {}).items()):
        color = f"C{index}"
        axis.plot(sizes, values, marker="o", color=color, label=case)
        if before and case in before and len(before[case]) == len(sizes):
            axis.plot(sizes, before[case], linestyle="--", marker="x", color=color, alpha=0.6)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("subscriptions (rpc: handlers)")
    axis.set_ylabel("microseconds")
    dashed = " (dashed: before issue 18)" if before else ""
    axis.set_title(f"cost as subscriptions grow{dashed}", fontsize=10)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7)


def _levels(
    axis: Any,
    xlabel: str,
    levels: tuple[int, ...],
    load: dict[str, list[float]],
    prefixes: tuple[str, ...],
    ylabel: str,
) -> None:
    """The ``load`` rows starting with one of ``prefixes`` against ``levels``; a log scale when
    labelled ``ylabel`` (values orders of magnitude apart), else linear from 0."""
    for index, (row, values) in enumerate(load.items()):
        if row.startswith(prefixes) and len(values) == len(levels):
            axis.plot(levels, values, marker="o", color=f"C{index}", label=row)
    axis.set_xscale("log")
    if ylabel:
        axis.set_yscale("log")
        axis.set_ylabel(ylabel)
    else:
        axis.set_ylim(bottom=0)
        axis.set_ylabel("microseconds")
    axis.set_xticks(levels, [f"{level:,}" for level in levels])
    axis.minorticks_off()
    axis.set_xlabel(xlabel)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7)


def _bars(axis: Any, title: str, rows: dict[str, list[float]], labels: list[str]) -> None:
    """One group of bars per row, named by ``labels``."""
    for index, (row, values) in enumerate(rows.items()):
        shown = [name.replace(" events", "\nevents").replace(", ", ",\n") for name in labels]
        offset = index * (len(values) + 1)
        positions = [offset + i for i in range(len(values))]
        bars = axis.bar(positions, values, color=[f"C{i}" for i in range(len(values))])
        axis.bar_label(bars, [f"{v:,.0f}" if v >= 100 else f"{v:.1f}" for v in values], fontsize=8)
        axis.set_xticks(positions, shown, fontsize=7)
        if row:
            axis.set_ylabel(row, fontsize=8)
    axis.set_title(title, fontsize=10)
    axis.grid(True, axis="y", alpha=0.3)
