"""Job specs: the plain data that defines one run of a job kind.

A spec is a frozen dataclass. Its field defaults are the only defaults (the
CLI reads them with :meth:`JobSpec.default`), :meth:`JobSpec.validate` is the
only place its values are checked, and it travels as JSON
(:meth:`JobSpec.to_dict` / :meth:`JobSpec.from_dict`) in the job's row.

A spec knows what runs it: :meth:`JobSpec.run` calls its library function
(imported inside the method, so reading a spec loads no torch) and returns the
kind's typed result, :attr:`JobSpec.record` (see :mod:`t2reg.records`).
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Protocol, TypeVar

from t2reg.enums import Word
from t2reg.errors import InvalidInputError
from t2reg.records import JobRecord

if TYPE_CHECKING:
    from t2reg.registry import Registry

S = TypeVar("S", bound="JobSpec")

INT_MAX = 2**63 - 1  # the largest integer every supported database (and a JSON reader in C) keeps exactly

# How a resumable run hands over its progress: (state to continue from, the event of the step just done).
Checkpoint = Callable[[dict[str, Any], "dict[str, Any] | None"], None]
# A progress wrapper (iterable in, iterable out) for the phase a label names: a job's scoring after its last step.
Phases = Callable[[str], Callable[[Iterable], Iterable]]


class JobRun(Protocol):
    """What a running job hands the library call behind its spec (the runner's ``JobContext`` is one)."""

    @property
    def registry(self) -> Registry: ...

    @property
    def state(self) -> dict[str, Any] | None:
        """The last checkpoint to continue from (None: start)."""

    @property
    def job_id(self) -> int | None:
        """The job's id, recorded on what it publishes (so a resumed job publishes once)."""

    @property
    def progress(self) -> Phases | None:
        """Where a job run in the foreground shows the phases after its last step (None: nowhere)."""

    def checkpoint(self, state: dict[str, Any], event: dict[str, Any] | None = None) -> None:
        """Save ``state`` after a completed step, with the step's event."""


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """Base class of every job kind's spec."""

    kind: ClassVar[str] = "abstract"
    record: ClassVar[type[JobRecord]] = JobRecord  # what a finished job of this kind records
    # Settings renamed since jobs were stored: {old name: new name}, read the new way from old rows.
    renamed: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        # A field typed with a ``Word`` enum holds its member, however the spec was built (from the command
        # line, from a stored row); text that names no member is left for validate() to refuse by name.
        for name, words in _word_fields(type(self)).items():
            value = getattr(self, name)
            if isinstance(value, str) and not isinstance(value, words) and value in words.values():
                object.__setattr__(self, name, words(value))

    def run(self, job: JobRun) -> JobRecord:
        """Do the work this spec defines: the one call from a spec to the library function that runs it."""
        raise NotImplementedError(f"{type(self).__name__} does not say what runs it")

    def validate(self) -> None:
        """Refuse bad values before anything runs (a detached job fails at submission, not on a worker)."""

    def check(self, registry: Registry) -> None:
        """:meth:`validate`, then what only the registry can tell (the models and experts named exist)."""
        self.validate()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[S], data: dict[str, Any]) -> S:
        """The spec stored as ``data``; unknown or missing settings are refused by name."""
        data = {cls.renamed.get(k, k): v for k, v in data.items()}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise InvalidInputError(f"unknown {cls.kind} settings: {', '.join(unknown)}")
        missing = sorted(name for name, f in fields.items() if name not in data and _required(f))
        if missing:
            raise InvalidInputError(f"{cls.kind} settings lack {', '.join(missing)}")
        hints = typing.get_type_hints(cls)
        values = {k: tuple(v) if _is_tuple(hints[k]) and isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)

    @classmethod
    def default(cls, name: str) -> Any:
        """A field's default value, an enum's as its text (for command-line options, so defaults live here
        only)."""
        field = next((f for f in dataclasses.fields(cls) if f.name == name), None)
        if field is None or _required(field):
            raise KeyError(f"{cls.__name__} has no default for {name!r}")
        value = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        return value.value if isinstance(value, Enum) else value

    def replace(self: S, **changes: Any) -> S:
        return dataclasses.replace(self, **changes)


@functools.cache
def _word_fields(cls: type[JobSpec]) -> dict[str, Any]:
    """The fields of ``cls`` typed with a ``Word`` enum (optional or not), by name."""
    found = {}
    for name, hint in typing.get_type_hints(cls).items():
        for candidate in (typing.get_args(hint) or (hint,)):
            if isinstance(candidate, type) and issubclass(candidate, Word):
                found[name] = candidate
    return found


def _required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _is_tuple(hint: Any) -> bool:
    return hint is tuple or typing.get_origin(hint) is tuple


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Enum):
        return value.value
    return value


def positive(spec: JobSpec, *names: str) -> None:
    """Refuse any of ``names`` that is below 1 (or beyond what a database stores), naming it."""
    bad = [n for n in names if getattr(spec, n) < 1]
    if bad:
        raise InvalidInputError(f"{', '.join('{' + n + '}' for n in bad)} must be at least 1", options=bad)
    huge = [n for n in names if getattr(spec, n) > INT_MAX]
    if huge:
        raise InvalidInputError(f"{', '.join('{' + n + '}' for n in huge)} must be at most {INT_MAX}", options=huge)
