"""Text for error messages."""

from __future__ import annotations


def shorten(value: object, limit: int = 120) -> str:
    """``str(value)`` cut to ``limit`` characters, with ``...`` where it was cut.

    Error messages echo the value they refuse; a value read from a file or a
    request can be megabytes long.
    """
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."
