"""The bundle's ``README.md``: a Hugging Face model card for one expert version.

The YAML front matter carries what the Hub indexes: ``base_model`` (with
``base_model_relation: adapter``), ``library_name: t2reg``, ``tags``, and a
``model-index`` with every recorded score of the version: its protocol, n and
95% interval (Wilson, for a proportion with its n) ride in each metric's
``args`` and in its display name. The body says the same for people.
"""

from __future__ import annotations

from typing import Any

import yaml

from t2reg.registry.bundles.manifest import BundleModel, BundleVersion
from t2reg.registry.entities import EvaluationInfo
from t2reg.stats import wilson_interval

LIBRARY = "t2reg"


def render_card(version: BundleVersion, model: BundleModel) -> str:
    """The model card's text: front matter, then a short body."""
    front = yaml.safe_dump(card_data(version, model), sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\n{_body(version, model)}"


def card_data(version: BundleVersion, model: BundleModel) -> dict[str, Any]:
    tags = [LIBRARY, "transformer-squared", "svf", version.source.value] + ([version.task] if version.task else [])
    data: dict[str, Any] = {
        "base_model": model.name,
        "base_model_relation": "adapter",
        "library_name": LIBRARY,
        "tags": list(dict.fromkeys(tags)),
    }
    results = [_result(e) for e in version.evaluations]
    if results:
        data["model-index"] = [{"name": version.name, "results": results}]
    return data


def interval95(evaluation: EvaluationInfo) -> tuple[float, float] | None:
    """The 95% interval of a proportion with its n (None when there is no n or the value is not one)."""
    if evaluation.n is None or not 0.0 <= evaluation.value <= 1.0:
        return None
    return wilson_interval(round(evaluation.value * evaluation.n), evaluation.n)


def _result(evaluation: EvaluationInfo) -> dict[str, Any]:
    interval = interval95(evaluation)
    args: dict[str, Any] = {"protocol": evaluation.protocol, "n": evaluation.n}
    label = f"{evaluation.metric} (protocol {evaluation.protocol}, n={evaluation.n or '?'}"
    if interval is not None:
        args["ci95"] = [round(interval[0], 4), round(interval[1], 4)]
        label += f", 95% CI {interval[0]:.3f}-{interval[1]:.3f}"
    dataset = {"name": evaluation.task, "type": evaluation.task}
    if evaluation.split:
        dataset["split"] = evaluation.split
    return {
        "task": {"type": "text-generation", "name": evaluation.task},
        "dataset": dataset,
        "metrics": [{"type": evaluation.metric, "value": evaluation.value, "name": label + ")", "args": args}],
    }


def _body(version: BundleVersion, model: BundleModel) -> str:
    lines = [f"# {version.name}", "", version.description or
             f"A Transformer-Squared SVF expert for {model.name}" + (f" on {version.task}." if version.task else "."),
             "", f"Source: {version.source.value}. Exported from `{version.key}` by t2reg.", ""]
    if version.evaluations:
        lines += ["## Scores", "", "| task | metric | value | n | 95% interval | split | protocol |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for e in version.evaluations:
            interval = interval95(e)
            shown = f"{interval[0]:.3f}-{interval[1]:.3f}" if interval else ""
            lines.append(f"| {e.task} | {e.metric} | {e.value:.4g} | {e.n or ''} | {shown} | {e.split or ''} | "
                         f"`{e.protocol}` |")
        lines.append("")
    if version.lineage:
        lines += ["## Lineage", ""]
        lines += [f"* {edge.relation.value}: {edge.parent or edge.parent_name or '(no version)'}"
                  + (f" (weight {edge.weight:.4g})" if edge.weight is not None else "") for edge in version.lineage]
        lines.append("")
    lines += ["## Use", "", "```", "t2reg hub pull REPO            # or: t2reg bundle import FOLDER",
              f"t2reg show {version.name}", "```", ""]
    return "\n".join(lines)


def read_front_matter(text: str) -> dict[str, Any]:
    """The YAML front matter of a model card (for checks; the Hub parses it the same way)."""
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---\n", 4)
    data = yaml.safe_load(text[4:end]) if end > 0 else None
    return data if isinstance(data, dict) else {}
