"""Testing pigeon Apps and transports.

``pigeon.testing.conformance`` is the suite every transport must pass, importable by a transport
written outside pigeon; ``pigeon.testing.waiting`` has the awaitable, deadline-bounded waits the
suite uses. These modules need pytest (and pytest-asyncio for the suite).
"""
