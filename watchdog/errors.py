"""Errors as one line, for logs and cycle reports."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an error; for a database error, the driver's message without
    SQLAlchemy's statement and background link."""
    message = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return message[0] if message else type(exc).__name__
