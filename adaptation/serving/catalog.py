"""What a server offers: the base model, the pool's experts, and ``<model>:auto`` (dispatch).

A :class:`Catalog` is read from the registry at start and on every reload; it
resolves the ``model`` a request names to a :class:`Target`. Experts of other
base models in the pool are left out (they would have to be transferred first),
and ``:auto`` is offered only when dispatch can be planned for the pool
(otherwise the reason is kept, and a request for it says so).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from t2reg.adaptation.dispatch import DispatchPlan, plan_dispatch
from t2reg.errors import InvalidInputError, NotFoundError
from t2reg.expert_file import Expert
from t2reg.registry import ExpertVersion, Registry

log = logging.getLogger("t2reg.serve")
AUTO = ":auto"


@dataclass(frozen=True)
class Target:
    """What answers a request: the base weights (``expert`` None), one expert, or dispatch (``auto``)."""

    id: str  # the model id as /v1/models lists it
    expert: str | None = None
    auto: bool = False


@dataclass
class Catalog:
    """The model ids a server answers to, as of its last (re)load."""

    model: str  # the base model's id: the name or alias the server was started with
    names: tuple[str, ...]  # every spelling of the base model (registered name, aliases)
    experts: dict[str, ExpertVersion]  # ref -> version, the pool's experts on this model
    dispatch_plan: DispatchPlan | None = None
    auto_problem: str | None = None  # why ``:auto`` is not offered, when it is not
    skipped: list[str] = field(default_factory=list)  # pool experts of other base models
    loaded_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def auto_id(self) -> str:
        return self.model + AUTO

    def ids(self) -> list[str]:
        return [self.model, *sorted(self.experts), *([self.auto_id] if self.dispatch_plan else [])]

    def resolve(self, requested: str) -> Target:
        """The target of a request's ``model``: an id from :meth:`ids`, an expert's bare name (its newest version
        in the pool), or any spelling of the base model (with ``:auto`` for dispatch)."""
        if requested in self.experts:
            return Target(requested, requested)
        base, auto = (requested[: -len(AUTO)], True) if requested.endswith(AUTO) else (requested, False)
        if base in self.names:
            if not auto:
                return Target(self.model)
            if self.dispatch_plan is None:
                raise NotFoundError(f"the model {requested!r} is not served: {self.auto_problem}")
            return Target(self.auto_id, auto=True)
        named = [v for v in self.experts.values() if v.name == requested]
        if named:
            return Target(max(named, key=lambda v: v.version).ref, max(named, key=lambda v: v.version).ref)
        raise NotFoundError(f"the model {requested!r} does not exist; GET /v1/models lists the {len(self.ids())} "
                            f"this server answers to")

    def to_models(self) -> list[dict[str, Any]]:
        """The /v1/models entries (OpenAI's shape, plus what each id runs)."""
        entries = [{"id": self.model, "object": "model", "created": self.loaded_at, "owned_by": "t2reg",
                    "t2reg": {"kind": "base"}}]
        for ref in sorted(self.experts):
            version = self.experts[ref]
            entries.append({"id": ref, "object": "model", "created": int(version.created_at.timestamp()),
                            "owned_by": "t2reg", "parent": self.model,
                            "t2reg": {"kind": "expert", "task": version.task, "source": str(version.source)}})
        if self.dispatch_plan:
            entries.append({"id": self.auto_id, "object": "model", "created": self.loaded_at, "owned_by": "t2reg",
                            "parent": self.model,
                            "t2reg": {"kind": "auto", "strategy": self.dispatch_plan.strategy,
                                      "routes": {c: v.ref for c, v in sorted(self.dispatch_plan.experts.items())}}})
        return entries


def load_catalog(registry: Registry, model: str, pool: Sequence[str], strategy: str) -> tuple[Catalog, dict[str, Expert]]:
    """The catalog for ``model`` and ``pool`` (empty: every expert of the model), and the expert files it needs."""
    info = registry.get_model(model)
    specs = list(pool) or [f"model={info.name}"]
    try:
        versions = registry.pool(specs)
    except NotFoundError:
        if pool:
            raise
        versions = []  # a model without experts yet: the base model alone is served
    skipped = sorted(v.ref for v in versions if v.model != info.name)
    if skipped:
        log.warning("pool experts of other base models are not served (transfer them first): %s", ", ".join(skipped))
    experts = {v.ref: v for v in versions if v.model == info.name}
    catalog = Catalog(model, (model, info.name, *info.aliases), experts, skipped=skipped)
    try:
        catalog.dispatch_plan = plan_dispatch(registry, info.name, strategy, specs)
    except (InvalidInputError, NotFoundError) as exc:
        catalog.auto_problem = str(exc)
        log.warning("%s%s is not served: %s", model, AUTO, exc)
    needed = set(experts)
    if catalog.dispatch_plan and catalog.dispatch_plan.dispatcher:
        needed.add(catalog.dispatch_plan.dispatcher.ref)
    return catalog, {ref: registry.read_expert(ref) for ref in sorted(needed)}
