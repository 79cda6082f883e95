"""pigeon's own run of the conformance suite's backlog tests, on every transport (see conftest)."""

from pigeon.testing.conformance.backlog import *  # noqa: F403
