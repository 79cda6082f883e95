"""pigeon's own run of the misread-URL conformance tests, on every transport."""

from pigeon.testing.conformance.misread_urls import *  # noqa: F403
