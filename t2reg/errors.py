"""One error hierarchy for the whole package.

Every error subclasses both :class:`T2RegError` and the builtin it resembles, so
callers can catch either (``except LookupError`` works on a missing expert).
Each class carries the process exit code the CLI uses for it.

Errors speak the library's language, not the command line's: a message names
the parameters it is about as ``{name}`` placeholders and lists them in
``options``. ``str(error)`` fills them with the parameter names
(``batch_size must be positive``); the CLI fills them with its own flags
(``--batch-size must be positive``) through :meth:`T2RegError.render`.

What to do about an error is data too: a :class:`Remedy` names the t2reg command
that fixes it (``model decompose smollm2-135m`` with ``modules=all``) and says in
plain words what that does. ``str(error)`` ends with the words; the CLI writes the
command as a user types it (``run `t2reg model decompose smollm2-135m --modules all```),
and a Python caller reads ``error.remedy``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
ECHO_MAX = 100  # characters of a user's input an error message repeats
MESSAGE_MAX = 1000  # characters of a whole message: a backstop for input echoed without shown()


def clip(text: str, limit: int = ECHO_MAX) -> str:
    """``text``, or its first ``limit`` characters, an ellipsis and how long it was: the one rule for how much
    of someone's input a message repeats (a 100k-character name must not come back as a 100k-character line)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def shown(value: object, limit: int = ECHO_MAX) -> str:
    """``value`` as ``repr`` writes it (text quoted), clipped by :func:`clip`: how a message quotes input."""
    if not isinstance(value, str):
        return clip(repr(value), limit)
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}… ({len(value)} characters)"


@dataclass(frozen=True)
class Remedy:
    """What to do about an error: the t2reg command that fixes it, as data, and what it does in words.

    ``command`` is the command's path (``("model", "decompose")``), ``arguments`` its positional arguments and
    ``options`` its named parameters in the library's spelling (``(("modules", "all"),)``; a value of None is
    a switch). ``does`` says what running it achieves, in words that fit any caller ("decompose the model's
    spectra"); a program can run the command itself from the other fields.
    """

    does: str
    command: tuple[str, ...]
    arguments: tuple[str, ...] = ()
    options: tuple[tuple[str, str | None], ...] = ()

    def words(self, name: Callable[[str], str] = str) -> tuple[str, ...]:
        """The command as words, each option spelt by ``name`` (the CLI passes its flag spelling)."""
        named = []
        for option, value in self.options:
            named += [name(option)] if value is None else [name(option), value]
        return (*self.command, *self.arguments, *named)


class T2RegError(Exception):
    """Base class of every error t2reg raises on purpose."""

    exit_code = 1

    def __init__(self, message: str = "", *, options: Sequence[str] = (), remedy: Remedy | None = None) -> None:
        if len(message) > MESSAGE_MAX:  # clipped well below the bound, so a rebuilt error is not clipped again
            message = clip(message, MESSAGE_MAX - 50)
        super().__init__(message)
        self.template = message
        self.options = tuple(options)
        self.remedy = remedy

    def render(self, name: Callable[[str], str] = str) -> str:
        """The message with each ``{option}`` written as ``name(option)``, without its remedy."""
        if not self.options:
            return self.template
        return _PLACEHOLDER.sub(lambda m: name(m.group(1)) if m.group(1) in self.options else m.group(0),
                                self.template)

    def __str__(self) -> str:
        message = self.render()
        return message if self.remedy is None else f"{message}; {self.remedy.does}"

    def __reduce__(self):
        # Errors cross process boundaries (a Ray replica's error reaches the job that sent it the work):
        # rebuild with the same class, template, options and remedy, not from the rendered message alone.
        return _rebuild, (type(self), self.template, self.options, self.remedy)


def _rebuild(cls: type[T2RegError], template: str, options: tuple[str, ...], remedy: Remedy | None = None
             ) -> T2RegError:
    return cls(template, options=options, remedy=remedy)


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

    def __str__(self) -> str:  # LookupError would otherwise quote the message
        return T2RegError.__str__(self)


class UnknownNameError(NotFoundError):
    """A name no table of named things holds (:class:`t2reg.names.Names`): a task, optimizer, backend, job kind or
    architecture. ``kind`` says which table, ``name`` what was asked for, ``known`` the names it holds."""

    def __init__(self, message: str = "", *, options: Sequence[str] = (), remedy: Remedy | None = None,
                 kind: str = "", name: str = "", known: Sequence[str] = ()) -> None:
        super().__init__(message, options=options, remedy=remedy)
        self.kind, self.name, self.known = kind, name, tuple(known)

    def __reduce__(self):
        # Keep the data across a process hop (a Ray replica's error), not only the message.
        return _rebuild_unknown, (type(self), self.template, self.options, self.kind, self.name, self.known)


def _rebuild_unknown(cls: type[UnknownNameError], template: str, options: tuple[str, ...], kind: str, name: str,
                     known: tuple[str, ...]) -> UnknownNameError:
    return cls(template, options=options, kind=kind, name=name, known=known)


class ConflictError(T2RegError):
    """The request contradicts what the registry already holds."""

    exit_code = 5


class UnsafeBindError(T2RegError):
    """A server was asked to listen beyond this machine without a key: anyone who reaches the port would read
    (or use) the registry. Its own exit code, so a script can tell it from a bad value."""

    exit_code = 6


class DatabaseError(T2RegError, ConnectionError):
    """The database cannot be reached or is not at a usable schema revision."""

    exit_code = 1


class ClusterError(T2RegError, ConnectionError):
    """The compute cluster (Ray) cannot be reached, or lost every replica a job was running on."""

    exit_code = 1


class IntegrityCheckError(T2RegError, OSError):
    """A blob is missing or its bytes no longer hash to its name."""

    exit_code = 1


class StorageError(T2RegError, OSError):
    """A file t2reg must write or remove cannot be (a read-only or full file system, no permission)."""

    exit_code = 1


class UnsupportedArchitectureError(UnknownNameError, InvalidInputError):
    """A model architecture that no entry of the architecture table covers (a ValueError too: it comes from a
    model's config)."""


class IsolationUnavailableError(T2RegError):
    """Generated code cannot be run under OS isolation here, and the weak mode was not chosen by name."""

    exit_code = 1


class SandboxStartError(T2RegError, OSError):
    """The machine could not start a sandboxed run (no process, no namespace, no control group), even after
    retries. Nothing of the program ran, so nothing about it was learnt: never a wrong answer."""

    exit_code = 1


class UncheckableTestsError(InvalidInputError):
    """A code problem whose tests cannot be judged outside the program's process: their assertions cannot be
    rewritten into values compared by t2reg, or its reference solution does not pass them."""


class HubError(T2RegError, ConnectionError):
    """The Hugging Face Hub cannot be reached (or offline mode forbids it), or refused a request."""

    exit_code = 1
