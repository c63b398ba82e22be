"""Does the method do anything on small models? Every comparison paired, on the same questions.

(a) A SmolLM2-135M ARC-Easy expert (cloze policy, exact expected reward)
    against the base model, on ARC-Easy test.
(b) Transfer: the expert carried in canonical order, and shuffled (several
    seeds), to
      - positive controls: SmolLM2 copies with 2 %, 5 % and 10 % relative noise
        on their MLP matrices (synthetic: same family, same shapes), where an
        ordered transfer should keep most of the expert's effect and a shuffled
        one lose it;
      - Gemma-3-270M (another family), on ARC-Easy (the expert's task) and
        ARC-Challenge (unseen).
(c) Few-shot adaptation on an unseen task (ARC-Challenge) for SmolLM2: CEM in
    the strength space over a pool of three real experts (two ARC-Easy seeds
    and the dispatch classification expert) against the best single expert,
    strength-tuned on the same shots, the uniform average, and the base model.

(d) Cross-family transfer by methods that learn the correspondence from
    unlabeled text (projection, distill) beside rank order, each with its
    control, on a ladder of targets: SmolLM2 itself, its 2/5/10 % noisy copies,
    Gemma-3-270M; ARC-Easy (the expert's task) and ARC-Challenge (unseen).
    Steps (``--steps``), cheapest first, so the compute goes where the
    diagnostics point:
      ceiling   proxy-tuning (target + beta * the expert's log-ratio on the
                source, from recorded per-question option scores) on every
                rung: if this does not beat the target, distillation cannot;
      fit       projection's per-matrix fit (held-out R^2 of the map, the share
                of the mapped change the SVF form expresses) on every rung;
      ladder    every method on every rung against the base model and against
                its control (rank: shuffled seeds; projection: the map fitted
                on mismatched positions; distill: the teacher's shifts shuffled
                across questions);
      controls  on Gemma, for each method: a random z of matched size per
                matrix (the null band, several seeds), the sign flip, and the
                strength sweep (z - 1 scaled by 0.5 and 2);
      final     on Gemma, the whole ARC-Easy test split: each method and its
                control against the base and against each other.

Resumable: every training and adaptation is a job in the bench registry
(./.t2reg-bench), found again by its spec; every evaluation is recorded with
its per-question results and read back. A full run takes CPU-hours on 2 cores.

Usage: python bench/science.py [--parts a,b,c,d] [--n 1000] [--shuffles 5] [--iterations 40] [--targets ...]
       python bench/science.py --parts d --steps ceiling,fit [--methods projection,distill] [--rungs self,gemma]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".t2reg-bench" / "science.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="a,b,c")
    parser.add_argument("--n", type=int, default=1000, help="held-out questions per comparison (seeded sample; "
                                                            "0: the whole test split)")
    parser.add_argument("--shuffles", type=int, default=5)
    parser.add_argument("--noise", default="0.02,0.05,0.1")
    parser.add_argument("--targets", default="control,gemma-easy,gemma-challenge",
                        help="part (b)'s targets: the noisy SmolLM2 controls, Gemma on ARC-Easy, Gemma on ARC-Challenge")
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--shots", type=int, default=40)
    parser.add_argument("--population", type=int, default=12, help="part (c): CEM candidates per generation")
    parser.add_argument("--generations", type=int, default=8, help="part (c): CEM generations")
    parser.add_argument("--steps", default="ceiling,fit,ladder,controls,final", help="part (d)'s steps")
    parser.add_argument("--methods", default="rank,projection,distill", help="part (d)'s transfer methods")
    parser.add_argument("--rungs", default="self,noise2,noise5,noise10,gemma", help="part (d)'s targets")
    parser.add_argument("--d-tasks", default="arc-easy,arc-challenge", help="part (d)'s evaluation tasks")
    parser.add_argument("--null-seeds", type=int, default=5, help="part (d): random-direction controls per method")
    parser.add_argument("--n-texts", type=int, default=1000, help="part (d): unlabeled texts per transfer")
    parser.add_argument("--distill-iterations", type=int, default=30)
    parser.add_argument("--distill-lr", type=float, default=0.01, help="part (d): distillation's learning rate")
    parser.add_argument("--distill-examples-per-step", type=int, default=16,
                        help="part (d): questions per distillation step")
    parser.add_argument("--beta", type=float, default=1.0, help="part (d): distillation teacher's strength")
    parser.add_argument("--distill-line-search", action="store_true",
                        help="part (d): stretch the distilled z - 1 by the factor that follows the teacher best on "
                             "the held-out stems (label-free)")
    parser.add_argument("--distill-checkpoint-by", choices=("agreement", "kl"), default="agreement",
                        help="part (d): how the held-out stems choose the distillation's checkpoint")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from apply import setup  # the same cached bench registry as bench/apply.py

    registry, _ = setup()
    lab = Lab(registry, os.environ.get("T2REG_DATA_DIR", str(ROOT.parent / "shared" / "data")),
              None if args.n == 0 else args.n, args.iterations)
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    parts = args.parts.split(",")
    if "a" in parts:
        results["a"] = lab.part_a()
    if "b" in parts:
        results["b"] = lab.part_b([float(x) for x in args.noise.split(",")], args.shuffles, args.targets.split(","))
    if "c" in parts:
        results["c"] = lab.part_c(args.shots, args.population, args.generations)
    if "d" in parts:
        from science_transfer import DistillSettings, Ladder

        distill = DistillSettings(args.distill_iterations, args.distill_lr, args.distill_examples_per_step, args.beta,
                                  args.distill_line_search, args.distill_checkpoint_by)
        ladder = Ladder(lab, args.methods.split(","), args.rungs.split(","), args.d_tasks.split(","),
                        args.n_texts, distill)
        done = results.setdefault("d", {})
        for step in args.steps.split(","):
            # keyed by the distillation's settings too: a run at other settings adds its rows beside these
            trains = "distill" in ladder.methods and step in ladder.TRAINS
            key = f"{step} ({distill.tag(args.n_texts)}; {args.rungs}; {args.d_tasks}; n {args.n})" if trains else step
            done[key] = getattr(ladder, step)(**({"seeds": args.null_seeds} if step == "controls" else {}))
            OUT.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {OUT}")


def trivial(c) -> str:
    """The trivial explanations beside a paired row: the constant answer's accuracy on these questions and the
    largest share of one option among each side's predictions (x/y)."""
    if c.constant is None:
        return ""

    def top(histogram: dict[str, int]) -> str:
        option, count = max(histogram.items(), key=lambda item: item[1])
        return f"{option} {count / c.n:.2f}"

    return f"const {c.constant.accuracy:.3f} ({c.constant.answer})  top pred {top(c.predictions_x)}/{top(c.predictions_y)}"


class Lab:
    def __init__(self, registry, data: str, n: int | None, iterations: int) -> None:
        self.registry, self.data, self.n, self.iterations = registry, data, n, iterations

    # -- the parts -----------------------------------------------------------------------------------

    def part_a(self) -> list[dict]:
        print("\n(a) a trained SmolLM2 ARC-Easy expert against the base model")
        expert = self.trained("arc-easy", seed=0)
        return [self.versus("trained, seed 0", "smollm2-135m", "arc-easy", expert)]

    def part_b(self, noises: list[float], shuffles: int, which: list[str]) -> list[dict]:
        from t2reg.adaptation.models import decompose_model
        from t2reg.adaptation.models.noisy import add_noisy_model

        print("\n(b) transfer: ordered against shuffled, on positive controls and on Gemma-3-270M")
        expert = self.trained("arc-easy", seed=0)
        rows = []
        targets = []
        for noise in noises if "control" in which else []:
            name = f"smollm2-noise{round(noise * 100)}"
            if name not in {m.name for m in self.registry.list_models()}:
                add_noisy_model(self.registry, "smollm2-135m", name, noise, seed=0)
            decompose_model(self.registry, name)
            targets.append((name, "arc-easy", f"control, noise {noise:.0%}"))
        gemma = {"gemma-easy": ("gemma3-270m", "arc-easy", "Gemma, same task"),
                 "gemma-challenge": ("gemma3-270m", "arc-challenge", "Gemma, unseen")}
        targets += [gemma[key] for key in gemma if key in which]
        if any(model == "gemma3-270m" for model, _, _ in targets):
            self.ensure("gemma3-270m")
        for model, task, label in targets:
            ordered = self.moved(expert, model, "none", 0)
            rows.append(self.versus(f"{label}: ordered", model, task, ordered))
            for seed in range(shuffles):
                shuffled = self.moved(expert, model, "shuffled", seed)
                rows.append(self.versus(f"{label}: shuffled seed {seed}", model, task, shuffled))
                rows.append(self.head_to_head(f"{label}: ordered vs shuffled {seed}", task, shuffled, ordered))
        return rows

    def part_c(self, shots: int, population: int, generations: int) -> list[dict]:
        print("\n(c) few-shot CEM on an unseen task (ARC-Challenge) over three real SmolLM2 experts")
        pool = [self.trained("arc-easy", seed=0), self.trained("arc-easy", seed=1), self.trained("dispatch", seed=0)]
        task, model = "arc-challenge", "smollm2-135m"
        search = dict(shots=shots, population=population, generations=generations)
        adapted = self.adapted(model, task, pool, "strength", **search)
        singles = {ref: self.adapted(model, task, [ref], "strength", tag=ref, **search) for ref in pool}
        from t2reg.adaptation.jobs import record_of

        shot_scores = {ref: record_of(self.registry.jobs.get(job)).shot_score for ref, (_, job) in singles.items()}
        best_single = max(shot_scores, key=shot_scores.get)
        uniform = self.uniform(model, task, pool)
        rows = [self.versus("CEM over the pool", model, task, adapted[0]),
                self.versus(f"best single ({best_single}), strength-tuned", model, task, singles[best_single][0]),
                self.versus("uniform average", model, task, uniform),
                self.head_to_head("CEM vs best single", task, singles[best_single][0], adapted[0])]
        return rows

    # -- the pieces, each made once ---------------------------------------------------------------------

    def trained(self, task: str, seed: int) -> str:
        from t2reg.adaptation.jobs import record_of
        from t2reg.adaptation.training.spec import TrainSpec

        spec = TrainSpec("smollm2-135m", task, iterations=self.iterations, examples_per_step=16, lr=0.01, kl=0.0,
                         validation=100, eval_every=5, heldout=100, seed=seed, data_dir=self.data,
                         name=f"science-{task}-s{seed}")
        return record_of(self.job(spec, f"train {task} seed {seed}")).published

    def moved(self, ref: str, target: str, baseline: str, seed: int) -> str:
        from t2reg.transfer import RankOptions
        from t2reg.transfer.publishing import transfer_version

        return transfer_version(self.registry, ref, target, RankOptions(baseline=baseline, seed=seed)).version.ref

    def adapted(self, model: str, task: str, pool: list[str], space: str, *, shots: int, population: int,
                generations: int, tag: str = "pool"):
        from t2reg.adaptation.jobs import record_of
        from t2reg.adaptation.search.spec import AdaptSpec

        safe = tag.replace(":", "-")
        spec = AdaptSpec(model, task, tuple(pool), shots=shots, heldout=100, population=population, elite=0.25,
                         iterations=generations, mix_space=space, data_dir=self.data, name=f"science-{task}-{space}-{safe}")
        job = self.job(spec, f"CEM {task} over {tag}")
        return record_of(job).published, job.id

    def uniform(self, model: str, task: str, pool: list[str]) -> str:
        """The pool's uniform average (alpha = 1/K, as published), for reference."""
        import numpy as np

        from t2reg.registry.derived import DerivedExpert
        from t2reg.enums import Source

        name = f"science-{task}-uniform"
        found = self.registry.list(where=f"name={name}")
        if found:
            return found[0].ref
        experts = [self.registry.read_expert(ref) for ref in pool]
        vectors = {n: np.mean([e.vectors[n] for e in experts], axis=0) for n in experts[0].vectors}
        return self.registry.publish_derived(DerivedExpert(vectors, model, task, Source.ADAPTED, name,
                                                           provenance={"method": "uniform", "components": pool})).ref

    def versus(self, label: str, model: str, task: str, expert: str, n: int | None | str = "default") -> dict:
        return self.head_to_head(label, task, f"base:{model}", expert, n)

    def head_to_head(self, label: str, task: str, x: str, y: str, n: int | None | str = "default") -> dict:
        from t2reg.adaptation.evaluation.compare import compare
        from t2reg.adaptation.evaluation.spec import EvalSpec

        start = time.perf_counter()
        limit = self.n if n == "default" else n
        c = compare(self.registry, x, y, EvalSpec(task, limit=limit, data_dir=self.data))
        return self.show(label, task, c, f"{time.perf_counter() - start:.0f}s")

    @staticmethod
    def show(label: str, task: str, c, when: str) -> dict:
        """One paired row printed (with its trivial explanations) and as science.json keeps it."""
        low, high = c.delta_ci95
        lp = "-" if c.logprob_delta is None else f"{c.logprob_delta:+.3f}"
        among = "-" if c.choice_logprob_delta is None else f"{c.choice_logprob_delta:+.3f}"
        print(f"  {label:<52} n={c.n:<5} {c.accuracy_x:.3f} -> {c.accuracy_y:.3f}  {c.delta:+.3f} "
              f"({low:+.3f} to {high:+.3f})  p={c.mcnemar_p:.3g}  dlogp {lp} (among options {among})  {trivial(c)}  [{when}]", flush=True)
        return {"label": label, "task": task, **c.to_dict()}

    def job(self, spec, label: str):
        """The succeeded job of exactly this spec, or a new one run here (a killed run resumes)."""
        from t2reg.adaptation.jobs import run_with_progress, submit_here
        from t2reg.enums import JobStatus

        for job in self.registry.jobs.list(kind=spec.kind, limit=1000):
            if type(spec).from_dict(job.spec) == spec:  # a spec stored before a setting existed has its default
                job = self._after_its_worker(job, label)
                if job.status == JobStatus.SUCCEEDED:
                    return job
                # failed, cancelled, or running with no heartbeat: its process died; this one takes it over
                self.registry.jobs.requeue(job.id, force=True)
                return run_with_progress(self.registry, job.id, getattr(spec, "iterations", None), label)
        claim, job = submit_here(self.registry, spec)
        return run_with_progress(self.registry, job.id, getattr(spec, "iterations", None), label, claim=claim)

    def _after_its_worker(self, job, label: str):
        """``job`` once no live process holds it: a second science.py on the same registry that reaches a job the
        first is running waits for it instead of taking it over and running it twice."""
        if self.registry.jobs.held(job):
            print(f"  {label}: job {job.id} is running in another process ({job.worker}); waiting for it", flush=True)
        while self.registry.jobs.held(job):
            time.sleep(30)
            job = self.registry.jobs.get(job.id)
        return job

    def ensure(self, model: str) -> None:
        from t2reg.adaptation.models import decompose_model
        from t2reg.adaptation.reporting.demo import ensure_weights

        ensure_weights(self.registry, model)
        decompose_model(self.registry, model)


if __name__ == "__main__":
    main()
