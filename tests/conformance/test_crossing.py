"""pigeon's own run of the conformance suite's pattern-crossing tests, on every transport."""

from pigeon.testing.conformance.crossing import *  # noqa: F403
