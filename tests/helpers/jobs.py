"""Job kinds for tests: a spec with no settings and a handler whose dict is the result."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from t2reg.adaptation.jobs import JobContext, register_job_kind
from t2reg.specs import JobSpec


class Result(dict):
    """A plain dict that is also a job result."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self)


def register_test_kind(name: str, handler: Callable[[JobContext], dict[str, Any]]) -> type[JobSpec]:
    """Register job kind ``name`` running ``handler(context)``; returns its spec class (no fields)."""
    spec = dataclasses.make_dataclass(f"TestSpec_{name.replace('-', '_')}", [], bases=(JobSpec,), frozen=True,
                                      namespace={"kind": name})
    register_job_kind(spec, lambda context, _spec: Result(handler(context)))
    return spec
