"""NATS options are checked at ``App()``: a typo fails there, naming the option and the valid
ones, instead of being ignored or failing at ``start``."""

from __future__ import annotations

import pytest

from pigeon import App, ConfigurationError


@pytest.mark.parametrize("typo", ["ack_wiat", "conect_timeout", "replica"])
def test_an_unknown_option_is_refused_at_app_naming_the_valid_ones(typo: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        App("nats://127.0.0.1:4222", **{typo: 1})
    text = str(caught.value)
    assert repr(typo) in text
    for valid in ("ack_wait", "connect_timeout", "replicas", "user_credentials"):
        assert valid in text  # pigeon's own options and nats-py's are listed


def test_pigeon_and_nats_py_options_are_taken() -> None:
    App(
        "nats://127.0.0.1:4222",
        ack_wait=10,
        replicas=1,
        reconnect_patience=5,
        max_control_line=4096,
        pending_msgs_limit=100,
        pending_bytes_limit=1 << 20,
        service="svc",
        version="1.0.0",
        connect_timeout=1,
        name="client",
        user_credentials=None,
        error_cb=None,
    )


@pytest.mark.parametrize(
    ("typo", "meant"), [("ack_wiat", "ack_wait"), ("conect_timeout", "connect_timeout")]
)
def test_a_misspelled_option_is_refused_with_the_option_meant(typo: str, meant: str) -> None:
    with pytest.raises(ConfigurationError, match=f"'{typo}' \\(did you mean '{meant}'\\?\\)"):
        App("nats://127.0.0.1:4222", **{typo: 1})
