"""Job specs: the plain data that defines one run of a job kind.

A spec is a frozen dataclass. Its field defaults are the only defaults (the
CLI reads them with :meth:`JobSpec.default`), :meth:`JobSpec.validate` is the
only place its values are checked, and it travels as JSON
(:meth:`JobSpec.to_dict` / :meth:`JobSpec.from_dict`) in the job's row.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar

from t2reg.errors import InvalidInputError

if TYPE_CHECKING:
    from t2reg.registry import Registry

S = TypeVar("S", bound="JobSpec")

INT_MAX = 2**63 - 1  # the largest integer every supported database (and a JSON reader in C) keeps exactly

# How a resumable run hands over its progress: (state to continue from, the event of the step just done).
Checkpoint = Callable[[dict[str, Any], "dict[str, Any] | None"], None]


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """Base class of every job kind's spec."""

    kind: ClassVar[str] = "abstract"

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
        """A field's default value (for command-line options, so defaults live here only)."""
        field = next((f for f in dataclasses.fields(cls) if f.name == name), None)
        if field is None or _required(field):
            raise KeyError(f"{cls.__name__} has no default for {name!r}")
        return field.default if field.default is not dataclasses.MISSING else field.default_factory()

    def replace(self: S, **changes: Any) -> S:
        return dataclasses.replace(self, **changes)


def _required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _is_tuple(hint: Any) -> bool:
    return hint is tuple or typing.get_origin(hint) is tuple


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


def positive(spec: JobSpec, *names: str) -> None:
    """Refuse any of ``names`` that is below 1 (or beyond what a database stores), naming it."""
    bad = [n for n in names if getattr(spec, n) < 1]
    if bad:
        raise InvalidInputError(f"{', '.join('{' + n + '}' for n in bad)} must be at least 1", options=bad)
    huge = [n for n in names if getattr(spec, n) > INT_MAX]
    if huge:
        raise InvalidInputError(f"{', '.join('{' + n + '}' for n in huge)} must be at most {INT_MAX}", options=huge)
