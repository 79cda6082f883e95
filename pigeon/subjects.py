"""Subjects: dot-separated tokens, with NATS wildcards ``*`` (one token) and ``>`` (the rest)."""

from __future__ import annotations

from functools import lru_cache

from pigeon.errors import ConfigurationError


@lru_cache(maxsize=4096)
def validate(subject: str, *, wildcards: bool = False) -> str:
    """Return ``subject`` if well formed, else raise ``ConfigurationError`` saying what is wrong.

    Tokens must be non-empty and free of whitespace; ``*`` and ``>`` are allowed only where
    ``wildcards`` is true (subscriptions), ``>`` only as the last token.
    """
    if not isinstance(subject, str) or not subject:
        raise ConfigurationError(f"subject {subject!r} is empty; use tokens like 'orders.created'")
    tokens = subject.split(".")
    for index, token in enumerate(tokens):
        if not token:
            raise ConfigurationError(
                f"subject {subject!r} has an empty token; separate tokens with single dots"
            )
        if any(c.isspace() for c in token):
            raise ConfigurationError(f"subject {subject!r} contains whitespace; remove it")
        if token in ("*", ">") or ("*" in token or ">" in token):
            if not wildcards:
                raise ConfigurationError(
                    f"subject {subject!r} has a wildcard; wildcards are for subscriptions only"
                )
            if token not in ("*", ">"):
                raise ConfigurationError(
                    f"subject {subject!r}: a wildcard must be a whole token ('orders.*')"
                )
            if token == ">" and index != len(tokens) - 1:
                raise ConfigurationError(f"subject {subject!r}: '>' must be the last token")
    return subject


def matches(pattern: str, subject: str) -> bool:
    """Whether ``subject`` (no wildcards) is matched by ``pattern`` (NATS semantics)."""
    if pattern == subject:
        return True
    pattern_tokens = pattern.split(".")
    subject_tokens = subject.split(".")
    for index, token in enumerate(pattern_tokens):
        if token == ">":
            return len(subject_tokens) > index
        if index >= len(subject_tokens):
            return False
        if token != "*" and token != subject_tokens[index]:
            return False
    return len(pattern_tokens) == len(subject_tokens)
