"""One error hierarchy for the whole package.

Every error subclasses both :class:`T2RegError` and the builtin it resembles, so
callers can catch either (``except LookupError`` works on a missing expert).
Each class carries the process exit code the CLI uses for it.
"""

from __future__ import annotations


class T2RegError(Exception):
    """Base class of every error t2reg raises on purpose."""

    exit_code = 1


class InvalidInputError(T2RegError, ValueError):
    """The user's input (a file, a reference, an option value) is malformed."""

    exit_code = 4


class ExpertFileError(InvalidInputError):
    """An expert file breaks format v1."""


class InvalidReferenceError(InvalidInputError):
    """A reference is not ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``."""


class NotFoundError(T2RegError, LookupError):
    """A model, expert, version, alias or blob does not exist."""

    exit_code = 3

    def __str__(self) -> str:  # LookupError/KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConflictError(T2RegError):
    """The request contradicts what the registry already holds."""

    exit_code = 5


class DatabaseError(T2RegError, ConnectionError):
    """The database cannot be reached or is not at a usable schema revision."""

    exit_code = 1


class IntegrityCheckError(T2RegError, OSError):
    """A blob is missing or its bytes no longer hash to its name."""

    exit_code = 1


class UnsupportedArchitectureError(InvalidInputError):
    """A model architecture that no entry of the architecture table covers."""
