"""A three-node NATS cluster loses the leader of the work stream mid-run: no job is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.scenarios.cluster import cluster_node_loss
from reliability.targets import Cluster

JOBS = 400


@pytest.mark.slow
async def test_no_job_is_lost_when_the_stream_leader_dies(cluster: Cluster, tmp_path: Path) -> None:
    result = await cluster_node_loss(cluster, tmp_path, jobs=JOBS, workers=3)

    assert result.problems == [], result.explain()
    assert result.sent == JOBS
    assert result.lost == 0
    assert result.processed == JOBS
