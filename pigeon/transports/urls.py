"""URLs as pigeon shows them: every credential masked, safe for logs, errors and documents."""

from __future__ import annotations

from urllib.parse import urlsplit


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: safe for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
