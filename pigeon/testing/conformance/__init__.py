"""The conformance suite: the semantics every pigeon transport must give, as pytest tests.

pigeon runs it on every transport it ships; a transport written elsewhere runs it on itself
(``pip install 'pigeon[testing]'`` brings pytest and pytest-asyncio)::

    # conftest.py
    import pytest
    from pigeon.testing.conformance import Backend, Features, make_app, uid  # noqa: F401
    from pigeon.transports.registry import register_transport

    register_transport("mybroker", "mypackage.transport:MyTransport")

    @pytest.fixture
    def backend() -> Backend:
        return Backend("mybroker", lambda: "mybroker://127.0.0.1", features=Features(durable=False))

    # test_conformance.py
    from pigeon.testing.conformance.pubsub import *  # noqa: F403
    from pigeon.testing.conformance.rpc import *  # noqa: F403
    from pigeon.testing.conformance.workpool import *  # noqa: F403
    from pigeon.testing.conformance.protobuf import *  # noqa: F403
    from pigeon.testing.conformance.middleware import *  # noqa: F403
    from pigeon.testing.conformance.deduplicate import *  # noqa: F403

The tests need pytest-asyncio in auto mode: ``asyncio_mode = "auto"`` and
``asyncio_default_fixture_loop_scope = "function"`` in the pytest configuration. ``Features`` says
what a transport offers beyond the core; tests of a missing feature are skipped. Subjects and
queues are named after each test's ``uid``; cleaning them from a shared broker afterwards is the
backend's job (pigeon's own backends do it at the end of the session).
"""

from pigeon.testing.conformance.fixtures import (
    Backend,
    Features,
    MakeApp,
    make_app,
    requires,
    uid,
)

__all__ = ["Backend", "Features", "MakeApp", "make_app", "requires", "uid"]
