"""pigeon's own run of the conformance suite's handler-form tests, on every transport."""

from pigeon.testing.conformance.handler_forms import *  # noqa: F403
