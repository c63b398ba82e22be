"""Part (d) of bench/science.py: cross-family transfer methods on a ladder of targets, with their controls.

Every transfer is a job (found again by its spec), every evaluation recorded with its per-question results
(a seeded sample is cut from a whole-split run when one exists), so the part resumes where it stopped and
each step can run on its own (``--steps``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from t2reg.adaptation.crossmodel.spec import ExpertTransferRecord

RUNGS = {"self": "smollm2-135m", "noise2": "smollm2-noise2", "noise5": "smollm2-noise5", "noise10": "smollm2-noise10",
         "gemma": "gemma3-270m"}
SOURCE = "smollm2-135m"


@dataclass(frozen=True)
class DistillSettings:
    """The distillation's knobs the bench varies (the rest are TransferSpec's defaults)."""

    iterations: int = 30
    lr: float = 0.01
    examples_per_step: int = 16
    beta: float = 1.0
    line_search: bool = False
    checkpoint_by: str = "agreement"

    def tag(self, n_texts: int) -> str:
        return (f"distill lr {self.lr}, {self.iterations} x {self.examples_per_step}, beta {self.beta}, "
                f"{n_texts} texts" + (", line search" if self.line_search else "")
                + (f", checkpoint by {self.checkpoint_by}" if self.checkpoint_by != "agreement" else ""))


class Ladder:
    TRAINS = ("make", "ladder", "controls", "final")  # the steps whose rows depend on the distillation's settings

    def __init__(self, lab, methods: list[str], rungs: list[str], tasks: list[str], n_texts: int,
                 distill: DistillSettings):
        self.lab, self.methods, self.rungs, self.tasks = lab, methods, rungs, tasks
        self.n_texts, self.distill = n_texts, distill
        self.expert = lab.trained("arc-easy", seed=0)

    # -- the steps ------------------------------------------------------------------------------------------

    def ceiling(self) -> list[dict]:
        """Proxy-tuning on each rung: the target's option scores plus beta times the expert's shift on the
        source, paired against the target alone (beta 0) and against the shift shuffled across questions."""
        from t2reg.adaptation.evaluation.paired import pair
        from t2reg.adaptation.evaluation.proxy import proxy_tuned

        print("\n(d) ceiling: proxy-tuning from recorded option scores (no training)")
        rows = []
        for rung in self.rungs:
            target = self.target(rung)
            for task in self.tasks:
                src_base = self.results(f"base:{SOURCE}", task)
                src_expert = self.results(self.expert, task)
                tgt_base = self.results(f"base:{target}", task)
                alone = proxy_tuned(tgt_base, src_base, src_expert, beta=0.0)
                for beta in (0.5, 1.0, 2.0):
                    tuned = proxy_tuned(tgt_base, src_base, src_expert, beta=beta)
                    shuffled = proxy_tuned(tgt_base, src_base, src_expert, beta=beta, shuffle_seed=0)
                    for label, y in ((f"beta {beta}", tuned), (f"beta {beta}, shifts shuffled", shuffled)):
                        rows.append(self.show(f"{rung} {task}: ceiling {label}", task, pair(alone, y, "target", label)))
                    rows.append(self.show(f"{rung} {task}: ceiling beta {beta} vs shuffled", task,
                                          pair(shuffled, tuned, "shuffled", "proxy")))
        return rows

    def fit(self) -> list[dict]:
        """Projection's fit on each rung: how well a map explains the target's matrices from the source's,
        and how much of the mapped change the SVF form can express (before any evaluation)."""
        print("\n(d) fit: projection's maps and expressible shares")
        out = []
        for rung in self.rungs:
            result = self.transfer("projection", rung)
            summary = result.report["summary"]
            print(f"  {rung:<8} R^2 {summary['median_r2_heldout']:.3f}  share {summary['median_expressible_share']:.3f}"
                  f"  transmitted {summary['median_transmitted']:.3f}  mean |z-1| {summary['mean_abs_delta']:.4f}",
                  flush=True)
            out.append({"rung": rung, "published": result.published, **summary})
        return out

    def make(self) -> list[dict]:
        """Only the transfers and their controls (each a job), no evaluation: to run ahead of the ladder."""
        made = []
        for rung in self.rungs:
            for method in self.methods:
                if method == "rank" and self.target(rung) == SOURCE:
                    continue
                for baseline in ("none", "shuffled"):
                    result = self.transfer(method, rung, baseline=baseline)
                    print(f"  {rung:<8} {method:<10} {baseline:<8} {result.published}", flush=True)
                    made.append({"rung": rung, "method": method, "baseline": baseline, **result.to_dict()})
        return made

    def ladder(self) -> list[dict]:
        print("\n(d) ladder: each method on each rung, against the base and against its control")
        rows = []
        for rung in self.rungs:
            target = self.target(rung)
            for method in self.methods:
                if method == "rank" and target == SOURCE:
                    continue  # rank order onto the model itself copies the expert: nothing to learn
                made = self.transfer(method, rung).published
                control = self.transfer(method, rung, baseline="shuffled").published
                for task in self.tasks:
                    rows.append(self.lab.versus(f"{rung} {task}: {method}", target, task, made))
                    rows.append(self.lab.versus(f"{rung} {task}: {method} control", target, task, control))
                    rows.append(self.lab.head_to_head(f"{rung} {task}: {method} vs control", task, control, made))
        return rows

    def controls(self, seeds: int) -> list[dict]:
        from t2reg.transfer.controls import Control, ControlKind
        from t2reg.transfer.publishing import control_version

        print("\n(d) controls on Gemma: null band, sign flip, strength sweep")
        rows, target = [], self.target("gemma")
        for method in self.methods:
            made = self.transfer(method, "gemma").published
            # the strength sweep's ends first (does the effect grow with z - 1, and turn with its sign?), then the
            # null band, then the half strength
            kinds = [Control(ControlKind.STRENGTH, v) for v in (2.0, -1.0)]
            kinds += [Control(ControlKind.RANDOM, seed=s) for s in range(seeds)] + [Control(ControlKind.STRENGTH, 0.5)]
            for task in self.tasks:
                for control in kinds:
                    ref = control_version(self.lab.registry, made, control).ref
                    rows.append(self.lab.versus(f"gemma {task}: {method} {control.suffix()}", target, task, ref))
        return rows

    def final(self) -> list[dict]:
        print("\n(d) final: Gemma-3-270M, the whole ARC-Easy test split")
        rows, target = [], self.target("gemma")
        for method in self.methods:
            made = self.transfer(method, "gemma").published
            rows.append(self.lab.versus(f"whole arc-easy: {method}", target, "arc-easy", made, n=None))
            # the method's row before its control is trained: a stopped run has the headline figure already
            control = self.transfer(method, "gemma", baseline="shuffled").published
            rows.append(self.lab.versus(f"whole arc-easy: {method} control", target, "arc-easy", control, n=None))
            rows.append(self.lab.head_to_head(f"whole arc-easy: {method} vs control", "arc-easy", control, made,
                                              n=None))
        return rows

    # -- the pieces ---------------------------------------------------------------------------------------------

    def target(self, rung: str) -> str:
        from t2reg.adaptation.models import decompose_model
        from t2reg.adaptation.models.noisy import add_noisy_model

        model = RUNGS[rung]
        if rung.startswith("noise") and model not in {m.name for m in self.lab.registry.list_models()}:
            add_noisy_model(self.lab.registry, SOURCE, model, int(rung.removeprefix("noise")) / 100, seed=0)
        if rung == "gemma":
            self.lab.ensure(model)
        decompose_model(self.lab.registry, model)
        return model

    def transfer(self, method: str, rung: str, baseline: str = "none", seed: int = 0) -> ExpertTransferRecord:
        """The transfer's result (a job found again by its spec, or run here)."""
        from t2reg.adaptation.crossmodel.spec import TransferSpec
        from t2reg.adaptation.jobs import record_of

        target = self.target(rung)
        if method == "rank":
            spec = TransferSpec(target, ref=self.expert, baseline=baseline, seed=seed)
        else:
            extra = asdict(self.distill) if method == "distill" else {}
            spec = TransferSpec(target, ref=self.expert, method=method, baseline=baseline, seed=seed,
                                n_texts=self.n_texts, data_dir=self.lab.data, **extra)
        return record_of(self.lab.job(spec, f"{method} to {rung}" + (" (control)" if baseline != "none" else ""))) \
            .transfers[0]

    def results(self, subject: str, task: str) -> list[dict]:
        from t2reg.adaptation.evaluation.compare import results_for
        from t2reg.adaptation.evaluation.runs import questions_for
        from t2reg.adaptation.evaluation.paired import Subject
        from t2reg.adaptation.evaluation.scoring import resolve_mode
        from t2reg.adaptation.evaluation.spec import EvalSpec

        spec = EvalSpec(task, limit=self.lab.n, data_dir=self.lab.data)
        questions = questions_for(spec)
        protocol = questions.protocol(resolve_mode(questions.task, spec.mode))
        return results_for(self.lab.registry, Subject.parse(subject), spec, protocol)

    def show(self, label: str, task: str, c) -> dict:
        return self.lab.show(label, task, c, time.strftime("%H:%M"))
