"""The store's behaviour, run against SQLite and PostgreSQL alike."""

import numpy as np
import pytest
from sqlalchemy import func, select

from t2reg.registry.entities import Lineage
from t2reg.enums import ListSort, Relation
from t2reg.errors import ConflictError, InvalidInputError, NotFoundError
from t2reg.expert_file import Metric, read_expert
from t2reg.registry.orm import EvaluationRow, VersionRow
from tests.helpers.experts import make_expert, write

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture
def smol_shapes(registry):
    return registry.model_shapes("smollm2-135m")


@pytest.fixture
def expert_file(tmp_path, smol_shapes):
    def build(seed=0, name="e", **kwargs):
        return write(make_expert(smol_shapes, SMOL, seed=seed, **kwargs), tmp_path / f"{name}-{seed}.safetensors")

    return build


def test_publish_defaults_name_from_task_and_model_alias(registry, expert_file):
    v = registry.publish(expert_file(), metrics=["gsm8k:accuracy=0.79"])
    assert v.ref == "gsm8k-smollm2-135m:1"
    assert (v.model, v.task, v.source, v.status) == (SMOL, "gsm8k", "native", "live")
    assert v.n_params == 30 * 3 * 576
    assert [(e.task, e.metric, e.value) for e in v.evaluations] == [("gsm8k", "accuracy", 0.79)]


def test_publish_uses_the_alias_the_user_named(registry, expert_file):
    registry.add_model("smollm2-135m", aliases=["smol"])
    assert registry.publish(expert_file(), model="smol").name == "gsm8k-smol"


def test_file_metrics_are_recorded_at_publish(registry, expert_file):
    path = expert_file(metrics=(Metric("gsm8k", "accuracy", 0.5, "test", 100),))
    v = registry.publish(path)
    assert [(e.value, e.split, e.n, e.source) for e in v.evaluations] == [(0.5, "test", 100, "publish")]


def test_same_bytes_twice_store_one_blob_and_two_versions(registry, expert_file):
    path = expert_file()
    a, b = registry.publish(path), registry.publish(path)
    assert (a.version, b.version) == (1, 2) and a.sha256 == b.sha256
    assert len(list(registry.blobs.iter_blobs())) == 1


def test_download_is_byte_identical(registry, expert_file, tmp_path):
    path = expert_file()
    v = registry.publish(path)
    out = registry.download(v.ref, tmp_path / "copy.safetensors")
    assert out.read_bytes() == path.read_bytes()
    np.testing.assert_array_equal(
        registry.read_expert(v.ref).vectors["model.layers.0.mlp.up_proj.weight"],
        read_expert(path).vectors["model.layers.0.mlp.up_proj.weight"],
    )


def test_model_from_file_and_flag_must_agree(registry, expert_file):
    with pytest.raises(ConflictError, match="the file says its base model is"):
        registry.publish(expert_file(), model="gemma3-270m")


def test_task_is_required_from_flag_or_file(registry, expert_file):
    with pytest.raises(InvalidInputError, match="no task"):
        registry.publish(expert_file(task=None))
    assert registry.publish(expert_file(task=None), task="mbpp").name == "mbpp-smollm2-135m"


def test_expert_names_stay_on_their_model(registry, expert_file, tmp_path):
    registry.publish(expert_file(), name="shared")
    gemma = make_expert(registry.model_shapes("gemma3-270m"), "google/gemma-3-270m")
    with pytest.raises(ConflictError, match="belongs to model"):
        registry.publish(write(gemma, tmp_path / "g.safetensors"), name="shared")


def test_references_latest_version_and_alias(registry, expert_file):
    registry.publish(expert_file(0))
    registry.publish(expert_file(1))
    assert registry.get("gsm8k-smollm2-135m").version == 2
    registry.alias("gsm8k-smollm2-135m:1", "production")
    assert registry.get("gsm8k-smollm2-135m@production").version == 1
    with pytest.raises(ConflictError, match=r"move it explicitly \(force\)"):
        registry.alias("gsm8k-smollm2-135m:2", "production")
    registry.alias("gsm8k-smollm2-135m:2", "production", force=True)
    assert registry.get("gsm8k-smollm2-135m@production").version == 2
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        registry.get("gsm8k-smollm2-135m@staging")
    with pytest.raises(NotFoundError, match="no version 9"):
        registry.get("gsm8k-smollm2-135m:9")


def test_delete_is_soft_and_numbers_are_never_reused(registry, expert_file):
    registry.publish(expert_file(0))
    registry.publish(expert_file(1))
    registry.alias("gsm8k-smollm2-135m:2", "production")
    deleted = registry.delete("gsm8k-smollm2-135m:2")
    assert deleted.status == "deleted" and deleted.aliases == ()
    assert registry.get("gsm8k-smollm2-135m").version == 1
    assert registry.get("gsm8k-smollm2-135m:2").status == "deleted"
    assert registry.publish(expert_file(2)).version == 3
    with pytest.raises(NotFoundError):
        registry.delete("gsm8k-smollm2-135m:2")
    with pytest.raises(InvalidInputError, match="name the version"):
        registry.delete("gsm8k-smollm2-135m")


def test_tags_set_update_and_remove(registry, expert_file):
    v = registry.publish(expert_file(), tags={"seed": "3"})
    assert registry.tag(v.ref, {"reviewed": "yes", "seed": "4"}).tags == {"reviewed": "yes", "seed": "4"}
    assert registry.tag(v.ref, {}, remove=["seed"]).tags == {"reviewed": "yes"}
    with pytest.raises(NotFoundError):
        registry.tag(v.ref, {}, remove=["nope"])


def test_list_filters_by_model_task_and_source(registry, expert_file, tmp_path):
    registry.publish(expert_file(0))
    registry.publish(expert_file(1))
    registry.publish(expert_file(2, task="mbpp"))
    registry.publish(expert_file(3, task="mbpp", source="transferred"), name="mbpp-from-llama")
    assert [v.ref for v in registry.list()] == ["gsm8k-smollm2-135m:2", "mbpp-from-llama:1", "mbpp-smollm2-135m:1"]
    assert [v.ref for v in registry.list(task="gsm8k", all_versions=True)] == [
        "gsm8k-smollm2-135m:1", "gsm8k-smollm2-135m:2"]
    assert [v.ref for v in registry.list(sources=["transferred"])] == ["mbpp-from-llama:1"]
    assert registry.list(model="gemma3-270m") == []


def test_a_list_page_is_sorted_counted_and_cut_in_the_database(registry, expert_file):
    for i, (name, task, score) in enumerate([("b", "gsm8k", "0.5"), ("a", "gsm8k", "0.9"), ("c", "mbpp", None),
                                             ("d", "gsm8k", None), ("e", "mbpp", "0.7"), ("f", None, None)]):
        registry.publish(expert_file(i, task=task), name=name, metrics=[f"{task}:accuracy={score}"] if score else [])
    registry.publish(expert_file(9, task="gsm8k"), name="a", metrics=["gsm8k:accuracy=0.2"])  # a:2 is listed
    page = registry.list_page(sort=ListSort.NAME, limit=2)
    assert ([v.ref for v in page.versions], page.total) == (["a:2", "b:1"], 6)
    assert {ref: s.value for ref, s in page.scores.items()} == {"a:2": 0.2, "b:1": 0.5}
    assert [v.ref for v in registry.list_page(offset=2, limit=2).versions] == ["c:1", "d:1"]
    assert [v.ref for v in registry.list_page(limit=50).versions] == [v.ref for v in registry.list()]

    def refs(sort, descending=False, where=None):
        return [v.ref for v in registry.list_page(where=where, sort=sort, descending=descending).versions]

    # each version's score is under its own task's default protocol; no score (or no task) is last either way
    assert refs(ListSort.SCORE, descending=True) == ["e:1", "b:1", "a:2", "c:1", "d:1", "f:1"]
    assert refs(ListSort.SCORE) == ["a:2", "b:1", "e:1", "c:1", "d:1", "f:1"]
    assert refs(ListSort.TASK) == ["a:2", "b:1", "d:1", "c:1", "e:1", "f:1"]
    assert refs(ListSort.TASK, descending=True) == ["c:1", "e:1", "a:2", "b:1", "d:1", "f:1"]
    assert refs(ListSort.NAME, descending=True, where="task=gsm8k") == ["d:1", "b:1", "a:2"]
    assert registry.list_page(where="task=nope") == registry.list_page(where="task=nope", offset=50)
    assert registry.list_page(where="task=nope").total == 0
    with pytest.raises(InvalidInputError, match="unknown filter key 'colour'"):
        registry.list_page(where="colour=red")
    with pytest.raises(InvalidInputError, match="offset"):
        registry.list_page(offset=-1)


class TestBest:
    def _scores(self, registry, expert_file, values, task="gsm8k"):
        refs = []
        for i, value in enumerate(values):
            refs.append(registry.publish(expert_file(i, task=task), name=f"{task}-e{i}",
                                         metrics=[f"{task}:accuracy={value}"]).ref)
        return refs

    def test_ranks_by_value(self, registry, expert_file):
        refs = self._scores(registry, expert_file, [0.2, 0.9, 0.5])
        ranked = registry.best("gsm8k")
        assert [r.ref for r in ranked] == [refs[1], refs[2], refs[0]]
        assert [r.rank for r in ranked] == [1, 2, 3]
        assert registry.best("gsm8k", limit=1)[0].value == 0.9

    def test_uses_the_most_recent_evaluation_of_each_version(self, registry, expert_file):
        refs = self._scores(registry, expert_file, [0.2, 0.9])
        registry.record(refs[1], ["accuracy=0.1"])
        assert [(r.ref, r.value) for r in registry.best("gsm8k")] == [(refs[0], 0.2), (refs[1], 0.1)]

    def test_split_ranks_by_the_latest_score_on_that_split(self, registry, expert_file):
        refs = self._scores(registry, expert_file, [0.2, 0.9])
        registry.record(refs[0], ["accuracy=0.8"], split="test", n=1319)
        registry.record(refs[1], ["accuracy=0.3"], split="test", n=1319)
        registry.record(refs[1], ["accuracy=0.99"], split="validation")
        assert [(r.ref, r.value) for r in registry.best("gsm8k", split="test")] == [(refs[0], 0.8), (refs[1], 0.3)]
        assert registry.best("gsm8k", split="test")[0].n == 1319
        assert registry.best("gsm8k")[0].value == 0.99

    def test_excludes_deleted_and_filters_model_and_source(self, registry, expert_file, tmp_path):
        refs = self._scores(registry, expert_file, [0.2, 0.9])
        registry.delete(refs[1])
        gemma = make_expert(registry.model_shapes("gemma3-270m"), "google/gemma-3-270m", source="transferred")
        g = registry.publish(write(gemma, tmp_path / "g.safetensors"), metrics=["gsm8k:accuracy=0.5"])
        assert [r.ref for r in registry.best("gsm8k")] == [g.ref, refs[0]]
        assert [r.ref for r in registry.best("gsm8k", model="smollm2-135m")] == [refs[0]]
        assert [r.ref for r in registry.best("gsm8k", sources=["native"])] == [refs[0]]
        assert [r.ref for r in registry.best("gsm8k", sources=["native", "transferred"])] == [g.ref, refs[0]]

    def test_metric_and_task_separate_rankings(self, registry, expert_file):
        refs = self._scores(registry, expert_file, [0.2, 0.9])
        registry.record(refs[0], ["gsm8k:f1=0.7", "mbpp:accuracy=0.4"])
        assert [r.ref for r in registry.best("gsm8k", metric="f1")] == [refs[0]]
        assert [r.ref for r in registry.best("mbpp")] == [refs[0]]
        assert registry.best("arc-easy") == []
        assert registry.metrics_for_task("gsm8k") == ["accuracy", "f1"]

    def test_one_latest_flag_per_version_task_metric(self, registry, expert_file):
        refs = self._scores(registry, expert_file, [0.2])
        for value in (0.3, 0.4, 0.5):
            registry.record(refs[0], [f"accuracy={value}"], split="test")
        with registry.db.session() as s:
            latest = s.scalar(select(func.count()).where(EvaluationRow.is_latest.is_(True)))
            latest_split = s.scalar(select(func.count()).where(EvaluationRow.is_latest_in_split.is_(True)))
        assert (latest, latest_split) == (1, 2)  # one for split=None, one for split=test


def test_models_register_from_directory_with_aliases(registry, tiny_llama_dir):
    info = registry.add_model(str(tiny_llama_dir), aliases=["tiny"])
    assert (info.name, info.aliases, info.architecture, info.num_layers, info.num_matrices) == (
        "tiny-llama", ("tiny",), "LlamaForCausalLM", 2, 14)
    assert registry.get_model("tiny").name == "tiny-llama"
    again = registry.add_model(str(tiny_llama_dir), aliases=["tl"])  # same model: only adds the alias
    assert again.aliases == ("tiny", "tl")
    listed = {m.name: m for m in registry.list_models()}  # every model's aliases, in the order they were added
    assert listed["tiny-llama"] == registry.get_model("tl") and listed["google/gemma-3-270m"].aliases == ("gemma3-270m",)
    with pytest.raises(ConflictError, match="already names model"):
        registry.add_model("smollm2-135m", aliases=["tiny"])


def test_unknown_model_lists_known_aliases(registry):
    with pytest.raises(NotFoundError, match="unknown model 'nope'.*smollm2-135m"):
        registry.get_model("nope")


def test_verify_finds_missing_and_corrupt_blobs(registry, expert_file):
    a = registry.publish(expert_file(0))
    b = registry.publish(expert_file(1))
    assert registry.verify().ok
    registry.blobs.path(a.sha256).unlink()
    registry.blobs.path(b.sha256).write_bytes(b"garbage")
    report = registry.verify()
    assert not report.ok and report.missing == (a.sha256,) and report.corrupt == (b.sha256,)


def test_gc_removes_only_unreferenced_blobs_past_the_grace_period(registry, expert_file):
    kept = registry.publish(expert_file(0))
    orphan, _ = registry.blobs.put(b"nobody points here")
    assert registry.gc(grace_seconds=3600).removed == ()
    assert registry.gc(grace_seconds=0, dry_run=True).removed == (orphan,)
    assert registry.blobs.exists(orphan)
    report = registry.gc(grace_seconds=0)
    assert report.removed == (orphan,) and not registry.blobs.exists(orphan)
    assert registry.blobs.exists(kept.sha256) and registry.verify().ok


def test_lineage_is_recorded_and_shown(registry, expert_file):
    parent = registry.publish(expert_file(0))
    child = registry.publish(expert_file(1, source="transferred"), name="child",
                             lineage=[Lineage(parent.ref, Relation.TRANSFERRED_FROM, None, {"rank_align": "quantile"})])
    assert [(l.relation, l.parent, l.params) for l in child.lineage] == [
        ("transferred_from", parent.ref, {"rank_align": "quantile"})]


def test_derivations_are_the_live_children_seen_from_the_parent(registry, expert_file):
    parent = registry.publish(expert_file(0))
    edge = Lineage(parent.ref, Relation.MIXTURE_COMPONENT, 0.25, {"space": "z"})
    child = registry.publish(expert_file(1, source="adapted"), name="mix", lineage=[edge])
    gone = registry.publish(expert_file(2, source="adapted"), name="mix", lineage=[edge])
    registry.delete(gone.ref)
    assert [(d.child, d.source, d.relation, d.weight, d.params) for d in registry.derivations(parent.ref)] == [
        (child.ref, "adapted", "mixture_component", 0.25, {"space": "z"})]
    assert registry.derivations(child.ref) == []


def test_expert_bytes_are_what_download_writes(registry, expert_file, tmp_path):
    version = registry.publish(expert_file(0))
    assert registry.expert_bytes(version.ref) == registry.download(version.ref, tmp_path / "out").read_bytes()


def test_version_rows_point_at_existing_blobs(registry, expert_file):
    for i in range(3):
        registry.publish(expert_file(i))
    with registry.db.session() as s:
        shas = set(s.scalars(select(VersionRow.blob_sha256)))
    assert len(shas) == 3 and all(registry.blobs.exists(sha) for sha in shas)


def test_hub_ids_fail_clearly_when_offline(registry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NotFoundError, match="Hugging Face Hub"):
        registry.add_model("someone/some-model")
