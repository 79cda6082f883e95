"""pigeon's own run of the conformance suite's protobuf tests, on every transport (see conftest)."""

from pigeon.testing.conformance.protobuf import *  # noqa: F403
