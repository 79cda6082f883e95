"""URLs the client library would read otherwise than the user meant, or cannot read at all, are
refused at ``App(...)``: a ``ConfigurationError`` that names the fault and what to write instead,
and never shows the password, on every transport and in each server of a cluster's URL.

A password with an unencoded ``#``, ``?`` or ``/`` ends the host part for the clients (yarl,
urllib) but not for the eye: the App would connect to a host its errors do not name, and the
client's own logs would show the rest of the password. Each case is a kind of fault, built on the
backend's own host and port, so it needs no broker but runs wherever the transport does.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest

from pigeon import App, ConfigurationError
from pigeon.testing.conformance.fixtures import Backend
from pigeon.testing.conformance.hostile import scheme_of

FAULTS = {
    "#": "'#'",
    "?": "'?'",
    "/": "'/'",
    "%zz": "'%'",
    " ": "space",
    "\t": "control",
    "[": "'['",
    "\\": "'\\\\'",
}
"""Text put inside a password -> what the error must name."""


def _address(backend: Backend) -> str:
    """``host:port`` of the backend's broker."""
    return urlsplit(backend.url()).netloc.rpartition("@")[2]


def _misread(scheme: str, address: str, secret: str) -> list[tuple[str, str]]:
    """``(url, named)``: URLs of ``scheme`` the client would misread, and what the error names."""
    tail = "/0" if scheme == "redis" else "/"
    urls = [
        (f"{scheme}://user:{secret}{fault}{secret}@{address}{tail}", named)
        for fault, named in FAULTS.items()
    ]
    host = address.rpartition(":")[0]
    urls += [
        (f"{scheme}://user:{secret}@ss/{secret}@{address}{tail}", "'/'"),  # connects to 'ss'
        (f"{scheme}://user:{secret}@{host}:56x72{tail}", "port"),
        (f"{scheme}://user:{secret}@{host}:99999{tail}", "port"),
        (f"{scheme}://user:{secret}@{host}:+1{tail}", "port"),
        (f"{scheme}://user:{secret}@:1{tail}", "host"),
    ]
    if scheme == "nats":  # nats-py sends %XX as written: the server would get another password
        urls.append((f"nats://user:{secret}%41{secret}@{address}", "'%'"))
    return urls


def _misread_in_clusters(scheme: str, address: str, secret: str) -> list[tuple[str, str]]:
    """The same faults in a server of a URL that names several."""
    if scheme == "amqp":
        return [
            (f"amqp://user:{secret}#{secret}@{address},{address}/", "'#'"),
            (f"amqp://user:{secret}@{address},{address.partition(':')[0]}:0/", "port"),
        ]
    if scheme == "nats":
        return [
            (f"nats://{address},nats://user:{secret}#{secret}@{address}", "'#'"),
            (f"nats://user:{secret}@{address},nats://:4222", "host"),
        ]
    return []


def _shown(exc: BaseException) -> str:
    """Everything an error shows: its text and repr, and those of its causes."""
    texts = []
    current: BaseException | None = exc
    while current is not None:
        texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return " ".join(texts)


async def test_a_url_the_client_would_misread_is_refused_at_app(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    scheme = scheme_of(backend)
    if scheme not in ("nats", "amqp", "redis"):
        pytest.skip(f"{scheme}:// names no server")
    secret = f"s3cr3t{uuid.uuid4().hex[:8]}"
    address = _address(backend)
    caplog.set_level(logging.DEBUG)
    cases = _misread(scheme, address, secret) + _misread_in_clusters(scheme, address, secret)
    for url, named in cases:
        shown_url = url.replace(secret, "<secret>")
        options: dict[str, Any] = dict(backend.options)
        with pytest.raises(ConfigurationError) as raised:
            App(url, **options)
        text = _shown(raised.value)
        assert secret not in text, f"{shown_url!r}: the error shows the password: {text}"
        assert named in str(raised.value), f"{shown_url!r}: {named} not named in: {text}"
        assert "\n" not in str(raised.value), f"{shown_url!r}: not one line: {text}"
    assert secret not in caplog.text
