import pytest

from pigeon import ConfigurationError
from pigeon.subjects import matches, validate


@pytest.mark.parametrize(
    ("subject", "reason"),
    [
        ("", "empty"),
        ("orders..created", "empty token"),
        (".orders", "empty token"),
        ("orders.", "empty token"),
        ("orders created", "whitespace"),
        ("orders.*", "wildcard"),
    ],
)
def test_bad_subjects_are_refused_with_the_reason(subject: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        validate(subject)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [("orders.>.x", "last token"), ("orders.a*", "whole token"), ("a. b", "whitespace")],
)
def test_bad_patterns_are_refused(pattern: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        validate(pattern, wildcards=True)


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        ("*.b", "a.b", True),
        ("a.b", "a.c", False),
        (">", "anything.at.all", True),
    ],
)
def test_matching_follows_nats(pattern: str, subject: str, expected: bool) -> None:
    assert matches(pattern, subject) is expected


@pytest.mark.parametrize("name", ["", "a\tb", "a\x00b", "a\u200bb", 7])
def test_bad_group_and_durable_names_are_refused_at_decoration(name: object) -> None:
    from pigeon import App

    app = App("memory://")
    for option in ("group", "durable"):
        with pytest.raises(ConfigurationError, match=option):
            app.subscribe("orders.created", **{option: name})  # type: ignore[arg-type]
