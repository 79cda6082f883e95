"""MkDocs hook: warn (so ``mkdocs build --strict`` fails) for a public name without a docstring.

Public means: every name in ``pigeon.__all__``, and the public methods and properties a class of
them defines. mkdocstrings renders an undocumented name silently; this makes it an error.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("mkdocs.plugins.pigeon.docstrings")


def on_pre_build(config: Any) -> None:
    import pigeon

    for name in pigeon.__all__:
        for where in undocumented(name, getattr(pigeon, name)):
            log.warning("pigeon.%s has no docstring: the API reference needs one", where)


def undocumented(name: str, obj: Any) -> Iterator[str]:
    """The dotted names, under ``name``, of what lacks a docstring of its own."""
    if not inspect.isclass(obj):
        obj = type(obj)  # a constant, e.g. pigeon.JSON: its class documents it
    if not obj.__doc__:
        yield name
    for attribute, member in vars(obj).items():
        if attribute.startswith("_"):
            continue
        function = member.fget if isinstance(member, property) else member
        function = getattr(function, "__func__", function)
        if inspect.isfunction(function) and not function.__doc__:
            yield f"{name}.{attribute}"
