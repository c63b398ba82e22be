"""Scores live under protocols: `best` ranks one protocol at a time, each row with n, its interval and
whether it ties the leader; per-question results are blobs the store keeps, verifies and never collects
while a row points at them. On SQLite and PostgreSQL alike."""

import pytest

from t2reg.errors import InvalidInputError, NotFoundError
from t2reg.expert_file import Metric
from t2reg.protocols import Measurement, Protocol
from t2reg.question_results import dumps_results
from tests.helpers.experts import make_expert, write

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
CLOZE = Protocol("arc-easy", "test", "cloze", "v1", n=200, sample_seed=0)
LETTER = Protocol("arc-easy", "test", "letter", "v1", n=200, sample_seed=0)


def _metric(value, n=200):
    return Metric("arc-easy", "accuracy", value, "test", n)


@pytest.fixture
def versions(registry, tmp_path):
    shapes = registry.model_shapes("smollm2-135m")
    return [registry.publish(write(make_expert(shapes, SMOL, seed=i), tmp_path / f"e{i}.safetensors"),
                             task="arc-easy", name=f"e{i}").ref for i in range(3)]


def test_best_ranks_within_one_protocol_the_most_used_by_default(registry, versions):
    a, b, c = versions
    registry.record(a, [_metric(0.50)], protocol=CLOZE)
    registry.record(b, [_metric(0.46)], protocol=CLOZE)
    registry.record(c, [_metric(0.90)], protocol=LETTER)  # a letter prior's score: must not lead the cloze ranking
    registry.record(c, [_metric(0.30)], protocol=CLOZE)
    ranked = registry.best("arc-easy")
    assert [(r.ref, r.value, r.protocol) for r in ranked] == [(a, 0.50, CLOZE.id), (b, 0.46, CLOZE.id),
                                                              (c, 0.30, CLOZE.id)]
    assert [r.overlaps_leader for r in ranked] == [False, True, False]  # 0.46 vs 0.50 at n = 200: a tie
    assert ranked[0].interval95[0] < 0.5 < ranked[0].interval95[1]
    assert [(r.ref, r.value) for r in registry.best("arc-easy", protocol=LETTER.id)] == [(c, 0.90)]
    assert registry.protocols("arc-easy")[0].id == CLOZE.id  # the most used first
    with pytest.raises(NotFoundError, match="no protocol 'nope'"):
        registry.best("arc-easy", protocol="nope")


def test_protocols_are_read_by_id_together_and_an_unknown_id_is_left_out(registry, versions):
    registry.record(versions[0], [_metric(0.5)], protocol=CLOZE)
    registry.record(versions[0], [_metric(0.6)], protocol=LETTER)
    found = registry.protocols_by_id([CLOZE.id, LETTER.id, "nope"])
    assert set(found) == {CLOZE.id, LETTER.id}
    assert found[LETTER.id].spec == registry.protocol(LETTER.id).spec and found[LETTER.id].task == "arc-easy"
    assert registry.protocols_by_id([]) == {}


def test_best_defaults_to_a_measured_protocol_however_often_others_were_used(registry, versions):
    a, b, _ = versions
    for value in (0.99, 0.98, 0.97):  # typed in three times: the most used protocol, but nothing says how
        registry.record(a, [f"arc-easy:accuracy={value}"])
    assert [(r.ref, r.protocol) for r in registry.best("arc-easy")] == [(a, "reported:arc-easy")]  # all there is
    registry.record(b, [_metric(0.5)], protocol=CLOZE)
    assert registry.protocols("arc-easy")[0].id == "reported:arc-easy"
    assert [(r.ref, r.value, r.protocol) for r in registry.best("arc-easy")] == [(b, 0.5, CLOZE.id)]


def test_a_versions_latest_score_is_kept_per_protocol(registry, versions):
    a = versions[0]
    registry.record(a, [_metric(0.40)], protocol=CLOZE)
    registry.record(a, [_metric(0.70)], protocol=LETTER)  # newer, but another protocol
    assert [r.value for r in registry.best("arc-easy", protocol=CLOZE.id)] == [0.40]
    registry.record(a, [_metric(0.45)], protocol=CLOZE)
    assert [r.value for r in registry.best("arc-easy", protocol=CLOZE.id)] == [0.45]


def test_hand_recorded_scores_have_their_own_protocol(registry, versions):
    registry.record(versions[0], ["arc-easy:accuracy=0.99"])
    assert registry.get(versions[0]).evaluations[-1].protocol == "reported:arc-easy"
    registry.record(versions[1], [_metric(0.5)], protocol=CLOZE)
    assert [r.ref for r in registry.best("arc-easy", protocol=CLOZE.id)] == [versions[1]]
    with pytest.raises(InvalidInputError, match="cannot be recorded under a arc-easy protocol"):
        registry.record(versions[0], [Metric("gsm8k", "accuracy", 0.1)], protocol=CLOZE)


def test_per_question_results_are_kept_read_back_and_never_collected(registry, versions):
    rows = [{"id": f"q{i}", "prediction": "A", "answer": "AB"[i % 2], "correct": i % 2 == 0, "logprob": -1.0}
            for i in range(4)]
    registry.record(versions[0], [_metric(0.5, 4)], protocol=CLOZE, results=dumps_results(rows))
    found = registry.latest_measured("arc-easy", CLOZE.id, ref=versions[0])
    assert found.protocol == CLOZE.id and registry.evaluation_results(found.results_sha256) == rows
    assert registry.latest_measured("arc-easy", LETTER.id, ref=versions[0]) is None
    assert registry.gc(grace_seconds=0).removed == () and registry.verify().ok
    registry.record_model_evaluation("smollm2-135m", [_metric(0.3, 4)], protocol=CLOZE, results=dumps_results(rows))
    assert registry.latest_measured("arc-easy", CLOZE.id, model="smollm2-135m").results_sha256 == found.results_sha256
    with pytest.raises(InvalidInputError, match="every row needs"):
        registry.record(versions[0], [_metric(0.5)], protocol=CLOZE, results=dumps_results([{"id": "q"}]))


def test_a_publish_records_its_measured_scores_in_the_same_transaction(registry, tmp_path):
    rows = [{"id": "q", "prediction": "A", "answer": "A", "correct": True, "logprob": -0.5}]
    shapes = registry.model_shapes("smollm2-135m")
    v = registry.publish(write(make_expert(shapes, SMOL), tmp_path / "x.safetensors"), task="arc-easy",
                         measurements=[Measurement((_metric(1.0, 1),), CLOZE, dumps_results(rows))])
    assert [(e.metric, e.protocol) for e in v.evaluations] == [("accuracy", CLOZE.id)]
    assert registry.evaluation_results(v.evaluations[0].results_sha256) == rows


def test_only_hashed_protocols_count_as_measured():
    from t2reg.protocols import legacy_id, reported_id, without_bos_id
    from t2reg.registry.protocols import is_measured

    measured = Protocol("arc-easy", "test", "cloze", "v1", 100, 0).id
    assert is_measured(measured, "arc-easy")
    # legacy and typed-in scores say nothing of how they were taken; a voided id no longer hashes its spec
    for other in (legacy_id("arc-easy"), reported_id("arc-easy"), without_bos_id(measured)):
        assert not is_measured(other, "arc-easy")


def test_a_score_was_taken_without_bos_only_for_families_that_need_it_and_before_the_fix():
    from datetime import datetime, timezone

    from t2reg.registry.protocols import taken_without_bos

    measured = CLOZE.id
    before, after = (datetime(2026, 11, 29, hour, tzinfo=timezone.utc) for hour in (15, 19))
    assert taken_without_bos("Gemma3ForCausalLM", measured, "arc-easy", before)
    assert taken_without_bos("Gemma2ForCausalLM", measured, "arc-easy", before)
    assert not taken_without_bos("Gemma3ForCausalLM", measured, "arc-easy", after)
    assert not taken_without_bos("LlamaForCausalLM", measured, "arc-easy", before)
    assert not taken_without_bos("Gemma3ForCausalLM", "legacy:arc-easy", "arc-easy", before)  # not measured
