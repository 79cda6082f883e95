"""pigeon's own run of the metric-label conformance tests, on every transport."""

from pigeon.testing.conformance.metric_labels import *  # noqa: F403
