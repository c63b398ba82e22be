"""Job kinds for tests: a spec with no settings whose run returns a handler's dict as its record."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from t2reg.adaptation.jobs import JobContext, register_job_kind
from t2reg.records import JobRecord
from t2reg.specs import JobSpec


@dataclasses.dataclass(frozen=True)
class Outcome(JobRecord):
    """A record that is any plain dict."""

    values: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.values)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Outcome":
        return cls(dict(data))


def register_test_kind(name: str, handler: Callable[[JobContext], dict[str, Any]]) -> type[JobSpec]:
    """Register job kind ``name`` running ``handler(context)``; returns its spec class (no fields)."""
    spec = dataclasses.make_dataclass(
        f"TestSpec_{name.replace('-', '_')}", [], bases=(JobSpec,), frozen=True,
        namespace={"kind": name, "record": Outcome, "run": lambda _self, job: Outcome(handler(job))})
    register_job_kind(spec)
    return spec
