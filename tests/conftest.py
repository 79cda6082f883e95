from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from pigeon.testing.conformance import Backend, MakeApp, make_app, uid
from tests.backends import backend_factories
from tests.brokers import rabbitmq

BACKEND_FACTORIES = backend_factories()

__all__ = ["MakeApp", "make_app", "uid"]  # the suite's fixtures, for every test here


@pytest.fixture(params=sorted(BACKEND_FACTORIES))
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each conformance test runs once per transport."""
    return BACKEND_FACTORIES[request.param]()


OTHER_BACKENDS = ("memory", "nats", "redis")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``pytest -n N --dist loadgroup`` (``make test``), every test that talks to the
    shared RabbitMQ with quorum queues runs on one worker, one at a time: the RabbitMQ 3.10 here
    has file handles for ~300 quorum queues in all (``rabbitmq.sweep_when_due``), and four
    workers' queues at once used them up. The conformance tests on classic queues
    (``rabbitmq-classic``) run on another worker beside them, one at a time: they were a third
    of the serial group, the longest path of the suite. The tests of a RabbitMQ cluster of their
    own run together on another (they share one cluster); the rest share the workers."""
    for item in items:
        if "rabbitmq_cluster" in _text(item.path):
            item.add_marker(pytest.mark.xdist_group("rabbitmq-cluster"))
        elif "[rabbitmq-classic" in item.nodeid:
            item.add_marker(pytest.mark.xdist_group("rabbitmq-classic"))
        elif _touches_rabbitmq(item):
            item.add_marker(pytest.mark.xdist_group("rabbitmq"))


@pytest.fixture(autouse=True)
def _rabbitmq_swept(request: pytest.FixtureRequest) -> Iterator[None]:
    """Keep the session's RabbitMQ vhost from piling up queues (``rabbitmq.sweep_when_due``)."""
    yield
    groups = {mark.args for mark in request.node.iter_markers("xdist_group")}
    if groups & {("rabbitmq",), ("rabbitmq-classic",)}:
        rabbitmq.sweep_when_due()


def _touches_rabbitmq(item: pytest.Item) -> bool:
    nodeid = item.nodeid.lower()
    if "rabbitmq" in nodeid:
        return True
    text = _text(item.path)
    params = nodeid.partition("[")[2]
    mentions = "rabbitmq" in text or "amqp" in text
    return mentions and not any(name in params for name in OTHER_BACKENDS)


@functools.cache
def _text(path: Path) -> str:
    return path.read_text(errors="replace").lower()
