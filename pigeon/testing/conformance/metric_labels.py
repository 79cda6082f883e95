"""Every metric pigeon exports has labels of bounded cardinality: a handler's series are
labelled by the subject or queue it declared, and a caller's request latency by a declared
pattern, else by the subject for a bounded number of subjects, then ``other``. Subjects that
carry an id (``orders.<id>.get``) never make one series per id.
"""

from __future__ import annotations

import logging

import pytest

from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for

IDS = 30
"""Entities the tests send to, each on a subject of its own."""


def _label_values(metrics: object, label: str) -> dict[str, set[str]]:
    """Metric family -> the values its samples have for ``label``."""
    values: dict[str, set[str]] = {}
    for family in metrics.registry.collect():  # type: ignore[attr-defined]
        for sample in family.samples:
            if label in sample.labels:
                values.setdefault(family.name, set()).add(sample.labels[label])
    return values


async def test_no_metric_has_a_series_per_subject_sent_to(
    make_app: MakeApp, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("prometheus_client")
    from pigeon.metrics import OTHER, PrometheusMetrics

    metrics = PrometheusMetrics(request_subjects=[f"{uid}.*.get"], max_request_subjects=2)
    app, seen = make_app(), []
    app.use(metrics)

    @app.subscribe(f"{uid}.*.created")
    async def created(job: Job) -> None:
        seen.append(job.n)

    @app.rpc(f"{uid}.*.get")
    async def get(job: Job) -> Job:
        return job

    @app.rpc(f"{uid}.*.put")
    async def other(job: Job) -> Job:
        return job

    @app.worker(f"{uid}.jobs")
    async def work(job: Job) -> None:
        seen.append(job.n)

    with caplog.at_level(logging.WARNING, logger="pigeon"):
        async with app:
            for n in range(IDS):
                await app.publish(f"{uid}.{n}.created", Job(n))
                await app.enqueue(f"{uid}.jobs", Job(n))
                await app.request(f"{uid}.{n}.get", Job(n), reply=Job)
                await app.request(f"{uid}.{n}.put", Job(n), reply=Job)
            await wait_for(lambda: len(seen) == 2 * IDS, what="every event and job handled")
    subjects = _label_values(metrics, "subject")
    assert subjects["pigeon_request_duration_seconds"] == {
        f"{uid}.*.get",
        f"{uid}.0.put",
        f"{uid}.1.put",
        OTHER,
    }
    declared = {f"{uid}.*.created", f"{uid}.*.get", f"{uid}.*.put", f"{uid}.jobs"}
    for family, values in subjects.items():
        if family != "pigeon_request_duration_seconds":
            assert values <= declared, (family, values)
    others = [r.getMessage() for r in caplog.records if repr(OTHER) in r.getMessage()]
    assert len(others) == 1, others
    assert f"{uid}.2.put" in others[0]
