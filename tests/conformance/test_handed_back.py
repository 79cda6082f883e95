"""pigeon's own run of the conformance suite's handed-back order tests, on every transport (see
conftest)."""

from pigeon.testing.conformance.handed_back import *  # noqa: F403
