"""Distillation transfer on tiny real models: label-free, an identity expert leaves z at 1, a known
preference carries across families, and the shuffled control carries less of it."""

import dataclasses

import numpy as np
import pytest

from t2reg.adaptation.crossmodel.publishing import carry, effective_z
from t2reg.adaptation.crossmodel.distill import DistillReport, Teacher, line_search
from t2reg.adaptation.crossmodel.texts import stems
from t2reg.question_results import normalised
from t2reg.transfer.controls import Control, ControlKind, make
from t2reg.adaptation.evaluation.scoring import option_logprobs
from t2reg.adaptation.backends import open_for
from t2reg.adaptation.models import load_spectra
from t2reg.adaptation.tasks import get_task, register_task
from t2reg.adaptation.training.reinforce import train
from t2reg.adaptation.training.spec import TrainSpec
from t2reg.expert_file import read_expert
from t2reg.adaptation.crossmodel.spec import TransferSpec
from t2reg.enums import Relation, Source
from tests.adaptation.crossmodel.conftest import effective
from tests.helpers.data import DATA
from tests.helpers.tasks import always_task

SMALL = dict(n_texts=48, validation=16, examples_per_step=8, data_dir=str(DATA))


def test_an_identity_expert_distils_to_z_one(two_families, tmp_path):
    registry = two_families
    registry.new_expert_file("tiny", tmp_path / "identity.safetensors", task="arc-easy")
    ref = registry.publish(read_expert(tmp_path / "identity.safetensors"), model="tiny", task="arc-easy",
                           name="identity-tiny").ref
    result = carry(registry, TransferSpec("other", ref=ref, method="distill", iterations=3, lr=0.05, **SMALL), ref)
    # The expert's source model is rebuilt from its SVD in float32: equal to the base up to rounding, so the
    # teacher's shift is rounding too (seen from 1e-12 to 6e-7 as threads and load vary), never a move.
    assert result.report.teacher["changed_pick"] == 0 and result.report.teacher["kl_to_base"] < 1e-5
    z = effective(registry, result.version.ref)
    assert max(float(np.abs(v - 1).max()) for v in z.values()) < 0.005  # nothing to learn: the target stays itself
    assert result.version.source == Source.TRANSFERRED and result.version.lineage[0].params["method"] == "distill"
    # asked to stretch it, there is no direction: the search is skipped and the report says so
    stretched = carry(registry, TransferSpec("other", ref=ref, method="distill", iterations=3, lr=0.05,
                                             line_search=True, name="identity-stretched", **SMALL), ref)
    assert stretched.report.best_iteration == 0 and stretched.report.line_search == []
    assert any("line search skipped" in line for line in stretched.report.lines())


def test_distillation_never_reads_a_label(two_families):
    registry = two_families
    arc = get_task("arc-easy")

    def scrambled(root, split):  # every answer moved to another option
        return [dataclasses.replace(ex, answer="ABCDE"[("ABCDE".index(ex.answer) + 1) % len(ex.choices)])
                for ex in arc.examples(split, root)]

    register_task(dataclasses.replace(arc, name="arc-easy-scrambled", loader=scrambled))
    runs = [carry(registry, TransferSpec("other", ref="arc-easy-tiny:1", method="distill", iterations=2, lr=0.05,
                                         texts=task, name=f"label-free-{task}", **SMALL), "arc-easy-tiny:1")
            for task in ("arc-easy", "arc-easy-scrambled")]
    a, b = (registry.read_expert(r.version.ref).vectors for r in runs)
    assert all(np.array_equal(a[n], b[n]) for n in a)
    timeless = [[{k: v for k, v in e.items() if k != "seconds"} for e in r.report.curve] for r in runs]
    assert timeless[0] == timeless[1]


def test_checkpoints_by_kl_keep_the_lowest_kl_among_those_agreeing_as_often_as_the_target_alone(two_families):
    registry = two_families
    spec = TransferSpec("other", ref="arc-easy-tiny:1", method="distill", iterations=4, eval_every=1, lr=0.05,
                        name="by-agreement", **SMALL)
    by_agreement = carry(registry, spec, "arc-easy-tiny:1")
    by_kl = carry(registry, dataclasses.replace(spec, checkpoint_by="kl", name="by-kl"), "arc-easy-tiny:1")
    # the same training (deterministic); only the rule that reads the held-out scores differs
    scores = [[(e["iteration"], e["agreement"], e["teacher_kl"]) for e in r.report.curve] for r in (by_agreement, by_kl)]
    assert scores[0] == scores[1] and len(scores[0]) == 4
    report = by_kl.report
    eligible = {i: kl for i, agreement, kl in scores[1] if agreement >= report.start_agreement}
    assert min(eligible.values()) < report.start_teacher_kl  # training did lower the KL: the rule has a choice
    assert report.best_iteration == min(eligible, key=eligible.get) > 0
    # agreement on 16 stems moves in steps of 1/16: here no iteration passes the target alone's, so that rule
    # keeps z = 1 where the KL rule finds the step that followed the teacher better (the stall it exists for)
    assert max(a for _, a, _ in scores[0]) <= report.start_agreement and by_agreement.report.best_iteration == 0
    # each is its own transfer: the rule is in the lineage (only where it is not the default) and the report
    assert by_kl.version.lineage[0].params["checkpoint_by"] == "kl"
    assert "checkpoint_by" not in by_agreement.version.lineage[0].params
    assert any("by KL to the teacher" in line for line in report.lines())
    again = carry(registry, dataclasses.replace(spec, checkpoint_by="kl", name="by-kl"), "arc-easy-tiny:1")
    assert again.reused and again.version.ref == by_kl.version.ref


@pytest.mark.slow
def test_a_known_preference_carries_across_families_and_its_control_carries_less(two_families):
    registry = two_families
    task = always_task(registry, "tiny")  # the right option is always the word tiny likes least
    trained = train(registry, TrainSpec("tiny", task, iterations=12, examples_per_step=16, lr=0.3, kl=0.0, validation=16,
                                        eval_every=4, heldout=16, data_dir=str(DATA), name="always-tiny")).version
    word = task.removeprefix("always-")
    spec = TransferSpec("other", ref=trained.ref, method="distill", iterations=12, lr=0.3, kl=0.0, n_texts=64,
                        validation=16, examples_per_step=16, data_dir=str(DATA), texts=f"{task}:train")
    real = carry(registry, spec, trained.ref)
    control = carry(registry, dataclasses.replace(spec, baseline="shuffled"), trained.ref)
    assert real.report.teacher["changed_pick"] > 0.3  # the teacher does push the target towards the word
    held = get_task(task).examples("test", DATA)[:40]
    share = {}
    with open_for(registry, "other", "hf") as other:
        spectra = load_spectra("other", registry)
        share["base"] = _picks(other, get_task(task), held, word)
        for label, result in (("real", real), ("control", control)):
            with other.patched(spectra, registry.read_expert(result.version.ref)):
                share[label] = _picks(other, get_task(task), held, word)
    assert share["real"] > share["base"] + 0.25, share  # the other family now picks the word far more often
    # the control keeps the teacher's global push (the word is always the preferred option, so shuffling
    # questions keeps it here): what it must not exceed is the real transfer
    assert share["control"] <= share["real"] + 1e-9, share
    assert control.version.source == Source.TRANSFERRED_SHUFFLED
    assert [e.relation for e in real.version.lineage] == [Relation.TRANSFERRED_FROM]

    # the same run with a line search: the same training (deterministic), then z - 1 stretched by the factor
    # that followed the teacher best on the held-out stems; its own lineage, so neither is reused for the other
    stretched = carry(registry, dataclasses.replace(spec, line_search=True), trained.ref)
    report = stretched.report
    assert stretched.version.ref != real.version.ref and not stretched.reused
    assert stretched.version.lineage[0].params["line_search"] is True
    assert "line_search" not in real.version.lineage[0].params
    assert report.best_iteration == real.report.best_iteration > 0
    assert len(report.line_search) >= 2 and report.line_search[0].factor == 1.0
    kept = next(t for t in report.line_search if t.factor == report.factor)  # follows the teacher no worse
    assert kept.fit.teacher_kl <= report.line_search[0].fit.teacher_kl
    assert kept.fit.agreement >= report.line_search[0].fit.agreement
    z, z_real = effective(registry, stretched.version.ref), effective(registry, real.version.ref)
    assert all(np.allclose(z[n], np.clip(1 + report.factor * (z_real[n] - 1), 0, None), atol=1e-5) for n in z)
    assert any("line search along z - 1" in line for line in report.lines())
    assert carry(registry, spec, trained.ref).version.ref == real.version.ref  # asked again: reused


def test_the_line_search_finds_how_far_along_its_direction_the_teacher_lies(two_families, tmp_path):
    registry = two_families
    task = get_task("arc-easy")
    held = stems(task, "validation", 16, 0, DATA)
    registry.new_expert_file("other", tmp_path / "d.safetensors", task="arc-easy", noise=0.15, seed=4)
    spectra = load_spectra("other", registry)
    direction = effective_z(read_expert(tmp_path / "d.safetensors"), spectra)
    with open_for(registry, "other", "hf") as other:
        # the teacher: the target moved three times as far as the direction given
        with other.patched(spectra, make(direction, Control(ControlKind.STRENGTH, 3.0)), "none"):
            star = {ex.id: normalised(s) for ex, s in zip(held, option_logprobs(other, task, held))}
        found = line_search(other, spectra, task, held, star, direction)
        star_at_one = {ex.id: normalised(s) for ex, s in zip(held, _scored(other, spectra, task, held, direction))}
        at_one = line_search(other, spectra, task, held, star_at_one, direction)
    tries = found.tries
    assert [t.factor for t in tries] == [1.0, 1.5, 2.0, 3.0, 4.0]  # stopped at the first factor that did worse
    assert found.factor == 3.0 and tries[3].fit.teacher_kl < 1e-6 and tries[3].fit.agreement == 1.0
    assert all(a.fit.teacher_kl > b.fit.teacher_kl for a, b in zip(tries[:3], tries[1:4]))
    # what is kept is the strength control's stretch: z - 1 tripled, a singular value never below 0
    assert all(np.allclose(found.vectors[n], np.clip(1 + 3 * (direction[n] - 1), 0, None), atol=1e-6)
               for n in direction)
    # a teacher exactly at the trained z: nothing longer does better, and z is kept as it is
    assert [t.factor for t in at_one.tries] == [1.0, 1.5] and at_one.factor == 1.0


def _scored(backend, spectra, task, examples, z):
    with backend.patched(spectra, z, "none"):
        return option_logprobs(backend, task, examples)


def test_the_line_search_keeps_no_factor_that_agrees_less_and_stops_on_a_kl_that_is_not_a_number(monkeypatch):
    from t2reg.adaptation.crossmodel import distill

    def scripted(fits):
        calls = iter(fits)
        monkeypatch.setattr(distill, "held_out_fit", lambda *args: distill.HeldOutFit(*next(calls)))

    z = {"m": np.array([1.1, 0.9])}
    # (agreement, KL) per factor in LINE_SEARCH order: 2 has the lowest KL but agrees less than factor 1
    scripted([(0.70, 0.50), (0.72, 0.45), (0.65, 0.40), (0.71, 0.42)])
    found = line_search(None, None, None, [], {}, z)
    assert [t.factor for t in found.tries] == [1.0, 1.5, 2.0, 3.0] and found.factor == 1.5
    assert np.allclose(found.vectors["m"], [1.15, 0.85])
    scripted([(0.70, 0.50), (0.80, float("nan"))])
    found = line_search(None, None, None, [], {}, z)
    assert [t.factor for t in found.tries] == [1.0, 1.5] and found.factor == 1.0


def _picks(backend, task, examples, word) -> float:
    scored = option_logprobs(backend, task, examples)
    return float(np.mean([ex.choices[int(np.argmax(s))] == word for ex, s in zip(examples, scored)]))


def test_the_teacher_shuffle_keeps_option_counts():
    teacher = Teacher({"a": [0.0] * 4, "b": [0.0] * 4, "c": [0.0] * 3},
                      {"a": [1.0, 0, 0, 0], "b": [0, 1.0, 0, 0], "c": [0, 0, 1.0]})
    shuffled = teacher.shuffled(seed=3)
    assert shuffled.shift["c"] == [0, 0, 1.0] and sorted(map(tuple, (shuffled.shift["a"], shuffled.shift["b"]))) == \
        sorted(map(tuple, (teacher.shift["a"], teacher.shift["b"])))
    star = teacher.distribution(beta=1.0)
    assert all(np.isclose(np.exp(v).sum(), 1) for v in star.values()) and int(np.argmax(star["b"])) == 1


def test_a_report_stored_before_the_kl_rule_reads_its_agreement_from_validation():
    old = DistillReport("a", "b", "none", 0, {"beta": 1.0}, {"n_texts": 10, "texts": "task:arc-easy:train"},
                        best_iteration=5, curve=[{"iteration": 5, "validation": 0.8, "teacher_kl": 0.3}],
                        start_agreement=0.7)
    line = next(line for line in old.lines() if line.startswith("trained"))
    assert "best held-out agreement with the teacher 0.800 (the target alone: 0.700), kept iteration 5" in line
    assert "by KL" not in line
