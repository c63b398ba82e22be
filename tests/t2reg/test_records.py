"""Job records: what a job stores reads back as the same typed object, nested records included; rows written
by an older t2reg (an optional field missing, a key since dropped) still read."""

import json

import pytest

from t2reg.adaptation.crossmodel.spec import ExpertTransferRecord, TransferRecord, TransferSpec
from t2reg.adaptation.evaluation.spec import EvalRecord, EvalSpec
from t2reg.adaptation.jobs import job_kind, job_kinds
from t2reg.adaptation.search.spec import AdaptRecord, AdaptSpec
from t2reg.adaptation.training.spec import TrainRecord, TrainSpec
from t2reg.records import PairedRecord, ScoreRecord
from t2reg.specs import JobSpec

SCORE = ScoreRecord("arc-easy", "test", "accuracy", "cloze", 100, 61, 0.61, [0.51, 0.70], 12.5, 0.58, -1.2,
                    {"id": "p1"}, {"answer": "B", "accuracy": 0.27}, {"A": 20, "B": 30, "C": 25, "D": 25})
PAIRED = PairedRecord("base:m", "e:1", 100, 0.55, 0.61, 0.06, [0.01, 0.11], 0.03, 2, 8, {"id": "p1"}, 0.1, [0.0, 0.2])


def _through_json(record):
    return type(record).from_dict(json.loads(json.dumps(record.to_dict())))


@pytest.mark.parametrize("record", [
    SCORE,
    PAIRED,
    AdaptRecord("e:1", ["a:1", "b:2"], [0.3, 0.7], 10, 0.8, [0.8, -1.1], 4, 32, "batched", SCORE, SCORE, 1.5, PAIRED),
    TrainRecord("e:1", 16, 12, SCORE, SCORE, SCORE, None),
    EvalRecord("e:1", SCORE, [{"replica": 0, "per_second": 3.0}]),
    EvalRecord("base:m", SCORE),
    TransferRecord([ExpertTransferRecord("e:1", "m2", "e--to-m2:1", False, {"summary": {"r2": 0.4}}, ["a line"]),
                    ExpertTransferRecord("f:1", "m2", None, False, {}, [])]),
])
def test_every_record_reads_back_as_it_was_written(record):
    assert _through_json(record) == record


def test_nested_records_come_back_typed():
    adapted = _through_json(AdaptRecord("e:1", ["a:1"], [1.0], 10, 0.8, None, 4, 32, "auto", SCORE, SCORE,
                                        paired=PAIRED))
    assert isinstance(adapted.heldout, ScoreRecord) and adapted.heldout.interval95 == [0.51, 0.70]
    assert isinstance(adapted.paired, PairedRecord) and adapted.paired.delta_ci95 == [0.01, 0.11]
    moved = _through_json(TransferRecord([ExpertTransferRecord("e:1", "m2", None, True, {}, [])]))
    assert isinstance(moved.transfers[0], ExpertTransferRecord) and moved.transfers[0].reused


def test_an_eval_record_is_stored_flat_as_before():
    stored = EvalRecord("e:1", SCORE).to_dict()
    assert stored["subject"] == "e:1" and stored["score"] == 0.61 and stored["n"] == 100
    assert "replicas" not in stored  # only a run on replicas records them


def test_a_row_from_an_older_t2reg_still_reads():
    """A train result written before paired comparisons existed, with a key this version no longer writes."""
    row = TrainRecord("e:1", 16, 12, SCORE, SCORE, SCORE).to_dict()
    del row["paired"]
    row["curve"] = [{"iteration": 1}]
    assert TrainRecord.from_dict(row) == TrainRecord("e:1", 16, 12, SCORE, SCORE, SCORE)


@pytest.mark.parametrize("kind", ["adapt", "train", "eval", "transfer"])
def test_every_built_in_kind_names_its_record_and_what_runs_it(kind):
    spec = job_kind(kind).spec
    assert spec.record is not JobSpec.record
    assert spec.run is not JobSpec.run
    assert set(job_kinds()) >= {"adapt", "train", "eval", "transfer"}


def test_the_built_in_specs_and_records_pair_up():
    assert [(s.kind, s.record) for s in (AdaptSpec, TrainSpec, EvalSpec, TransferSpec)] == [
        ("adapt", AdaptRecord), ("train", TrainRecord), ("eval", EvalRecord), ("transfer", TransferRecord)]
