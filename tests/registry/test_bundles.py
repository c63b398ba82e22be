"""Bundles between registries: every score, protocol, tag, alias and lineage edge arrives; import is
idempotent; a tampered bundle is refused with nothing written."""

import hashlib
import json
import os
import shutil
import uuid

import pytest
import yaml
from sqlalchemy import func, select, text
from sqlalchemy import inspect as sa_inspect

from t2reg.errors import InvalidInputError, NotFoundError
from t2reg.protocols import Protocol
from t2reg.question_results import dumps_results
from t2reg.registry import Registry
from t2reg.registry.bundles.card import read_front_matter
from t2reg.registry.entities import Lineage
from t2reg.registry.orm import BlobRow, EvaluationRow, LineageRow, ProtocolRow, VersionRow
from t2reg.settings import load_settings
from t2reg.enums import Relation
from tests.helpers.experts import make_expert, write
from tests.helpers.registry_state import snapshot

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
PROTOCOL = Protocol(task="gsm8k", split="test", mode="generate", prompt_version="gsm8k-v1", n=2, sample_seed=0,
                    max_new_tokens=64)
RESULTS = dumps_results([{"id": "q1", "prediction": "4", "answer": "4", "correct": True, "logprob": -0.2},
                         {"id": "q2", "prediction": "5", "answer": "6", "correct": False, "logprob": -3.0}])


def history(registry, tmp_path):
    """A parent, a transfer of it, and a mixture of both, with scores, tags and aliases: the mixture's ref."""
    shapes = registry.model_shapes("smollm2-135m")
    files = [write(make_expert(shapes, SMOL, seed=i), tmp_path / f"h{i}.safetensors") for i in range(3)]
    parent = registry.publish(files[0], name="parent", metrics=["gsm8k:accuracy=0.4"], split="test", n=50)
    moved = registry.publish(files[1], name="moved", lineage=[Lineage(parent.ref, Relation.TRANSFERRED_FROM, None,
                                                                      {"layer_align": "relative"})])
    mixture = registry.publish(files[2], name="mixture", description="a mixture\nof two",
                               lineage=[Lineage(parent.ref, Relation.MIXTURE_COMPONENT, 0.25, {}),
                                        Lineage(moved.ref, Relation.MIXTURE_COMPONENT, 0.75, {})],
                               tags={"seed": "3", "team": "a"})
    registry.record(mixture.ref, ["gsm8k:accuracy=0.5"], split="test", n=2, protocol=PROTOCOL, results=RESULTS)
    registry.alias(mixture.ref, "production")
    return mixture.ref


def _pg_target(postgres, tmp_path, blobs="db"):
    url = postgres.create_database(f"b_{uuid.uuid4().hex[:12]}", template=postgres.template)
    target = Registry(load_settings(home=tmp_path / "pg-home", database_url=url, blob_root=blobs), check_schema=False)
    target.init()
    return target


def _counts(registry):
    with registry.db.session() as session:
        rows = tuple(session.scalar(select(func.count()).select_from(t)) for t in
                     (VersionRow, EvaluationRow, LineageRow, ProtocolRow, BlobRow))
    files = len(list(registry.blobs.iter_blobs()))
    return rows + (files,)


def _scores(version):
    return sorted((e.task, e.metric, e.value, e.split, e.n, e.source, e.protocol, e.results_sha256)
                  for e in version.evaluations)


def test_round_trip_sqlite_files_to_postgres_database_keeps_everything(sqlite_registry, postgres, tmp_path):
    source = sqlite_registry
    ref = history(source, tmp_path)
    source.export_bundle(ref, tmp_path / "bundle", with_lineage=True)
    target = _pg_target(postgres, tmp_path)
    try:
        done = target.import_bundle(tmp_path / "bundle")
        assert done.root == "mixture:1" and len(done.created) == 3 and done.dropped_lineage == ()
        for key, here in done.refs.items():
            was, now = source.get(key), target.get(here)
            assert (now.sha256, now.size, now.n_params, now.source, now.task, now.description, now.metadata) == (
                was.sha256, was.size, was.n_params, was.source, was.task, was.description, was.metadata)
            assert _scores(now) == _scores(was) and now.tags == was.tags and now.aliases == was.aliases
            assert [(e.parent, e.relation, e.weight, dict(e.params)) for e in now.lineage] == [
                (done.refs[e.parent], e.relation, e.weight, dict(e.params)) for e in was.lineage]
            assert target.download(here, tmp_path / "copy").read_bytes() == source.blobs.read(was.sha256)
        assert target.protocol(PROTOCOL.id).spec == source.protocol(PROTOCOL.id).spec
        sha = target.get("mixture@production").evaluations[-1].results_sha256
        assert target.evaluation_results(sha) == source.evaluation_results(sha)
        assert target.best("gsm8k", protocol=PROTOCOL.id)[0].ref == "mixture:1"
        assert target.verify().ok
    finally:
        target.close()


def test_importing_twice_changes_nothing(registry, tmp_path):
    ref = history(registry, tmp_path)
    registry.export_bundle(ref, tmp_path / "bundle", with_lineage=True)
    with Registry(load_settings(home=tmp_path / "other"), create=True) as target:
        target.import_bundle(tmp_path / "bundle")
        before = _counts(target)
        again = target.import_bundle(tmp_path / "bundle")
        assert again.created == () and again.evaluations_added == 0 and _counts(target) == before
    before = _counts(registry)  # into the registry it came from: the same versions, nothing added
    assert registry.import_bundle(tmp_path / "bundle").created == () and _counts(registry) == before


def test_without_lineage_parents_are_found_by_their_bytes_or_reported(sqlite_registry, tmp_path):
    ref = history(sqlite_registry, tmp_path)
    sqlite_registry.export_bundle(ref, tmp_path / "alone")
    with Registry(load_settings(home=tmp_path / "bare"), create=True) as bare:
        done = bare.import_bundle(tmp_path / "alone")
        assert len(done.dropped_lineage) == 2 and bare.get(done.root).lineage == ()
    sqlite_registry.export_bundle("parent:1", tmp_path / "p")
    sqlite_registry.export_bundle("moved:1", tmp_path / "m")
    with Registry(load_settings(home=tmp_path / "full"), create=True) as full:
        for folder in ("p", "m", "alone"):
            done = full.import_bundle(tmp_path / folder)
        assert done.dropped_lineage == ()
        assert [e.parent for e in full.get(done.root).lineage] == ["parent:1", "moved:1"]


def test_the_model_card_has_the_hub_keys(sqlite_registry, tmp_path):
    ref = history(sqlite_registry, tmp_path)
    sqlite_registry.export_bundle(ref, tmp_path / "bundle")
    card = read_front_matter((tmp_path / "bundle" / "README.md").read_text())
    assert card["base_model"] == SMOL and card["base_model_relation"] == "adapter"
    assert card["library_name"] == "t2reg" and "t2reg" in card["tags"] and "gsm8k" in card["tags"]
    [entry] = card["model-index"]
    [result] = entry["results"]
    [metric] = result["metrics"]
    assert (metric["type"], metric["value"], metric["args"]["protocol"], metric["args"]["n"]) == (
        "accuracy", 0.5, PROTOCOL.id, 2)
    low, high = metric["args"]["ci95"]
    assert 0 < low < 0.5 < high < 1
    assert yaml.safe_load(json.dumps(card)) == card


def _tamper_bytes(bundle):
    path = next((bundle / "experts").iterdir())
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


def _edit_manifest(change):
    def apply(bundle):
        manifest = json.loads((bundle / "t2reg.json").read_text())
        change(manifest)
        (bundle / "t2reg.json").write_text(json.dumps(manifest))
    return apply


def _symlinked(bundle):
    victim = next((bundle / "experts").iterdir())
    real = bundle.parent / "elsewhere"
    shutil.move(victim, real)
    os.symlink(real, victim)


TAMPERED = {
    "changed bytes": (_tamper_bytes, "does not match its sha256"),
    "traversal in a file path": (_edit_manifest(lambda m: m["files"][0].update(path="../../outside.safetensors")),
                                 "derived from hashes"),
    "traversal in a name": (_edit_manifest(lambda m: m["versions"][-1].update(name="../../etc")), "expert name"),
    "missing file": (lambda b: next((b / "experts").iterdir()).unlink(), "has no experts/"),
    "unknown format version": (_edit_manifest(lambda m: m.update(format_version=2)), "format version 2"),
    "symlinked file": (_symlinked, "symlink"),
    "protocol not matching its spec": (
        _edit_manifest(lambda m: [p["spec"].update(n=3) for p in m["protocols"] if p["id"] == PROTOCOL.id]),
        "does not match its spec"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_a_tampered_bundle_is_refused_and_writes_nothing(sqlite_registry, tmp_path, case):
    ref = history(sqlite_registry, tmp_path)
    bundle = tmp_path / "bundle"
    sqlite_registry.export_bundle(ref, bundle, with_lineage=True)
    tamper, words = TAMPERED[case]
    tamper(bundle)
    with Registry(load_settings(home=tmp_path / "target"), create=True) as target:
        before = _counts(target)
        with pytest.raises(InvalidInputError, match=words) as info:
            target.import_bundle(bundle)
        assert "\n" not in str(info.value)
        assert _counts(target) == before
    assert not (tmp_path / "outside.safetensors").exists()


def test_a_bundle_for_an_unknown_base_model_names_the_command_to_add_it(registry, tiny_llama_dir, tmp_path):
    registry.add_model(str(tiny_llama_dir), name="tiny-llama")
    shapes = registry.model_shapes("tiny-llama")
    version = registry.publish(write(make_expert(shapes, "tiny-llama"), tmp_path / "t.safetensors"))
    registry.export_bundle(version.ref, tmp_path / "bundle")
    with Registry(load_settings(home=tmp_path / "target"), create=True) as target:
        before = _counts(target)
        with pytest.raises(NotFoundError, match="which this registry does not know") as info:
            target.import_bundle(tmp_path / "bundle")
        assert info.value.remedy.words() == ("model", "add", "tiny-llama")
        assert _counts(target) == before


def test_export_refuses_a_folder_that_is_not_empty(sqlite_registry, tmp_path):
    ref = history(sqlite_registry, tmp_path)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(InvalidInputError, match="not an empty folder"):
        sqlite_registry.export_bundle(ref, tmp_path / "full")
    assert (tmp_path / "full" / "x").read_text() == "keep me"


def test_gemma_scores_from_before_the_bos_fix_arrive_under_their_own_protocol(registry, tmp_path):
    """A bundle written by a registry older than migration 0007 may hold Gemma scores taken without <bos>
    under a measured protocol: they land where the migration would have put them, later ones where they were."""
    arc = Protocol(task="arc-easy", split="test", mode="cloze", prompt_version="v1", n=2, sample_seed=0)
    shapes = registry.model_shapes("gemma3-270m")
    ref = registry.publish(write(make_expert(shapes, "google/gemma-3-270m"), tmp_path / "g.safetensors"),
                           name="g").ref
    for value in (0.25, 0.75):
        registry.record(ref, [f"arc-easy:accuracy={value}"], split="test", n=2, protocol=arc)
    registry.export_bundle(ref, tmp_path / "bundle")

    def backdate(manifest):
        for score in manifest["versions"][0]["evaluations"]:
            if score["value"] == 0.25:
                score["created_at"] = "2026-11-29T15:00:00+00:00"
    _edit_manifest(backdate)(tmp_path / "bundle")
    with Registry(load_settings(home=tmp_path / "other"), create=True) as target:
        assert target.import_bundle(tmp_path / "bundle").evaluations_added == 2
        assert {(e.value, e.protocol) for e in target.get("g:1").evaluations} == {(0.25, f"nobos:{arc.id}"),
                                                                                 (0.75, arc.id)}
        assert [r.value for r in target.best("arc-easy", protocol=arc.id)] == [0.75]
        voided = next(p for p in target.protocols("arc-easy") if p.id == f"nobos:{arc.id}")
        assert voided.spec["measured_as"]["id"] == arc.id and "<bos>" in voided.spec["note"]
        assert target.import_bundle(tmp_path / "bundle").evaluations_added == 0  # and again: nothing new


# -- what a bundle may not bring in ------------------------------------------------------------------------


def _hash_of(spec):
    """A measured protocol's id, computed the way t2reg.protocols does, for any spec: a forger can."""
    body = {k: v for k, v in spec.items() if k != "id"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


def _forge_protocol(new_spec):
    """Give the bundle's measured protocol ``new_spec(spec)`` under the id that hashes to it, and repoint its
    scores: what a forger who read t2reg.protocols would do."""
    def change(manifest):
        protocol = next(p for p in manifest["protocols"] if p["id"] == PROTOCOL.id)
        protocol["spec"] = new_spec(dict(protocol["spec"]))
        protocol["spec"]["id"] = protocol["id"] = _hash_of(protocol["spec"])
        for version in manifest["versions"]:
            for score in version["evaluations"]:
                if score["protocol"] == PROTOCOL.id:
                    score["protocol"] = protocol["id"]
    return change


def _spoof_kind(prefix):
    """Rename the measured protocol to a legacy, hand-reported or voided one with an arbitrary spec."""
    def change(manifest):
        protocol = next(p for p in manifest["protocols"] if p["id"] == PROTOCOL.id)
        protocol["id"] = new = prefix + ("gsm8k" if prefix != "nobos:" else PROTOCOL.id)
        protocol["spec"] = {"task": "gsm8k", "anything": {"at": ["all"]}}
        for version in manifest["versions"]:
            for score in version["evaluations"]:
                if score["protocol"] == PROTOCOL.id:
                    score["protocol"] = new
    return change


def _deep(levels):
    params = inner = {}
    for _ in range(levels):
        inner["a"] = {}
        inner = inner["a"]
    return params


def _edit_text(change):
    """Edit t2reg.json as text: JSON itself has no way to write 1e999."""
    def apply(bundle):
        path = bundle / "t2reg.json"
        path.write_text(change(path.read_text()))
    return apply


def _extra_file(bundle):
    data = dumps_results([{"id": "q9", "prediction": "1", "answer": "1", "correct": True, "logprob": -0.1}])
    sha = hashlib.sha256(data).hexdigest()
    (bundle / "results" / f"{sha}.jsonl.gz").write_bytes(data)
    _edit_manifest(lambda m: m["files"].append({"kind": "results", "sha256": sha, "size": len(data),
                                                "path": f"results/{sha}.jsonl.gz"}))(bundle)


def _on_mixture(change):
    return _edit_manifest(lambda m: change(next(v for v in m["versions"] if v["name"] == "mixture")))


POISONED = {
    "reported: protocol, arbitrary spec": (_edit_manifest(_spoof_kind("reported:")), "its spec must be"),
    "legacy: protocol, arbitrary spec": (_edit_manifest(_spoof_kind("legacy:")), "its spec must be"),
    "nobos: protocol, arbitrary spec": (_edit_manifest(_spoof_kind("nobos:")), "its spec must be"),
    "n 1e30 in a spec": (_edit_manifest(_forge_protocol(lambda s: {**s, "n": 1e30})), "protocol field 'n'"),
    "n 1e999 in a spec": (lambda b: (_edit_manifest(_forge_protocol(lambda s: {**s, "n": 12345678}))(b),
                                     _edit_text(lambda t: t.replace("12345678", "1e999"))(b)), "not a finite number"),
    "spec field unknown to t2reg": (_edit_manifest(_forge_protocol(lambda s: {**s, "extra": 1})), "no field"),
    "weight 1e999": (_edit_text(lambda t: t.replace('"weight": 0.25', '"weight": 1e999')), "weight must be"),
    "weight beyond any float": (_edit_text(lambda t: t.replace('"weight": 0.25', '"weight": ' + "9" * 400)),
                                "weight must be a number"),
    "lineage params 900 levels deep": (_on_mixture(lambda v: v["lineage"][0].update(params=_deep(900))),
                                       "nested more than 8 levels"),
    "lineage params 1e999": (_edit_text(lambda t: t.replace('"layer_align": "relative"', '"x": 1e999')),
                             "not a finite number"),
    "lineage params with a whole number beyond 64 bits": (
        _edit_text(lambda t: t.replace('"layer_align": "relative"', '"x": ' + "9" * 30)), "beyond"),
    "score 1e308": (_on_mixture(lambda v: v["evaluations"][0].update(value=1e308)), "proportion, from 0 to 1"),
    "score -5": (_on_mixture(lambda v: v["evaluations"][0].update(value=-5)), "proportion, from 0 to 1"),
    "n beyond 64 bits": (_on_mixture(lambda v: v["evaluations"][0].update(n=2**64)), "n must be at most"),
    "a year 1 score": (_on_mixture(lambda v: v["evaluations"][0].update(created_at="0001-01-01T00:00:00+14:00")),
                       "ISO 8601|between 1970"),
    "an extra unreferenced file": (_extra_file, "no version or score uses it"),
    "a score under another task's protocol": (_on_mixture(lambda v: v["evaluations"][0].update(task="mbpp")),
                                              "names a gsm8k protocol"),
    "name ending in a newline": (_on_mixture(lambda v: v.update(name="mixture\n")), "expert name"),
    "alias ending in a newline": (_on_mixture(lambda v: v.update(aliases=["production\n"])), "alias"),
    "split ending in a newline": (_on_mixture(lambda v: v["evaluations"][0].update(split="test\n")), "split"),
    "tag key ending in a newline": (_on_mixture(lambda v: v.update(tags={"seed\n": "3"})), "tag key"),
    "model name ending in a newline": (_edit_manifest(lambda m: m["models"][0].update(name=SMOL + "\n")),
                                       "OWNER/NAME"),
    "a 33-character score source": (_on_mixture(lambda v: v["evaluations"][0].update(source="s" * 33)),
                                    "score source"),
}


@pytest.mark.parametrize("case", sorted(POISONED))
def test_a_bundle_that_would_poison_the_registry_is_refused_with_nothing_written(sqlite_registry, registry,
                                                                                  tmp_path, case):
    ref = history(sqlite_registry, tmp_path)
    bundle = tmp_path / "bundle"
    sqlite_registry.export_bundle(ref, bundle, with_lineage=True)
    tamper, words = POISONED[case]
    tamper(bundle)
    before = snapshot(registry)
    with pytest.raises(InvalidInputError, match=words) as info:
        registry.import_bundle(bundle)
    assert "\n" not in str(info.value) and len(str(info.value)) < 1100
    assert snapshot(registry) == before


def _poison_as_an_unchecked_import_did(registry, tmp_path):
    """What today's main let a bundle store: a hand-reported protocol with an arbitrary spec, a measured one
    whose spec t2reg cannot read, lineage params 900 levels deep, a proportion of 1e308."""
    shapes = registry.model_shapes("smollm2-135m")
    parent = registry.publish(write(make_expert(shapes, SMOL, seed=0), tmp_path / "p.safetensors"), name="parent",
                              metrics=["gsm8k:accuracy=0.5"])
    child = registry.publish(write(make_expert(shapes, SMOL, seed=1), tmp_path / "c.safetensors"), name="child",
                             metrics=["gsm8k:accuracy=0.25"],
                             lineage=[Lineage(parent.ref, Relation.TRANSFERRED_FROM, None, {"k": 1})])
    registry.record(child.ref, ["gsm8k:accuracy=0.5"], split="test", n=2, protocol=PROTOCOL, results=RESULTS)
    with registry.db.session(write=True) as session:
        session.get(ProtocolRow, "reported:gsm8k").spec = {"task": "gsm8k", "x": [1, {"y": None}]}
        session.get(ProtocolRow, PROTOCOL.id).spec = {**PROTOCOL.to_dict(), "n": 1e30, "nonsense": True}
        session.scalar(select(LineageRow)).params = _deep(900)
        row = session.scalar(select(EvaluationRow).where(EvaluationRow.protocol_id == "reported:gsm8k")
                             .order_by(EvaluationRow.id.desc()))
        row.value = 1e308
    return child.ref


def test_every_read_works_on_what_an_unchecked_import_stored(registry, tmp_path):
    ref = _poison_as_an_unchecked_import_did(registry, tmp_path)
    assert {p.id: p.spec for p in registry.protocols()}["reported:gsm8k"] == {"task": "gsm8k", "x": [1, {"y": None}]}
    assert [r.ref for r in registry.best("gsm8k", protocol="reported:gsm8k")] == ["parent:1"]  # 1e308 passed over
    assert [r.ref for r in registry.best("gsm8k", protocol=PROTOCOL.id)] == [ref]
    [edge] = registry.get(ref).lineage
    assert "nested more than 8 levels" in edge.params["unreadable"]
    json.dumps(registry.get(ref).to_dict(), indent=2)
    manifest = registry.export_bundle(ref, tmp_path / "out", with_lineage=True)
    assert {v.key for v in manifest.versions} == {ref, "parent:1"}


def test_a_bundle_exported_from_a_poisoned_registry_is_refused_elsewhere(registry, tmp_path):
    ref = _poison_as_an_unchecked_import_did(registry, tmp_path)
    registry.export_bundle(ref, tmp_path / "out", with_lineage=True)
    with Registry(load_settings(home=tmp_path / "clean"), create=True) as clean:
        before = snapshot(clean)
        with pytest.raises(InvalidInputError):
            clean.import_bundle(tmp_path / "out")
        assert snapshot(clean) == before


def test_a_lineage_longer_than_the_recursion_limit_exports(sqlite_registry, tmp_path):
    # Each import may add a generation: a chain of 1,200 is what a registry can come to hold.
    registry = sqlite_registry
    shapes = registry.model_shapes("smollm2-135m")
    first = registry.publish(write(make_expert(shapes, SMOL), tmp_path / "e.safetensors"), name="chain")
    with registry.db.session(write=True) as session:
        row = session.get(VersionRow, session.scalar(select(VersionRow.id)))
        same = {a.key: getattr(row, a.key) for a in sa_inspect(VersionRow).column_attrs if a.key not in ("id", "version")}
        parent = row.id
        for number in range(2, 1201):
            child = VersionRow(version=number, **same)
            session.add(child)
            session.flush()
            session.add(LineageRow(child_id=child.id, parent_id=parent, relation="transferred_from", params={}))
            parent = child.id
    manifest = registry.export_bundle("chain:1200", tmp_path / "out", with_lineage=True)
    assert [v.key for v in manifest.versions] == [f"chain:{n}" for n in range(1, 1201)]
    assert manifest.versions[0].key == first.ref


def test_a_stored_value_deeper_than_python_parses_still_reads(registry, tmp_path):
    # Written by another tool: deeper than json.loads can go before Python's recursion limit.
    ref = _poison_as_an_unchecked_import_did(registry, tmp_path)
    deep = '{"a":' * 3000 + "0" + "}" * 3000
    with registry.db.session(write=True) as session:
        session.execute(text("UPDATE lineage SET params = :deep"), {"deep": deep})
        session.execute(text("UPDATE protocols SET spec = :deep WHERE id = 'reported:gsm8k'"), {"deep": deep})
    [edge] = registry.get(ref).lineage
    assert edge.params == {"unreadable": "nested too deeply to read"}
    assert "unreadable" in {p.id: p.spec for p in registry.protocols()}["reported:gsm8k"]
    registry.export_bundle(ref, tmp_path / "out", with_lineage=True)
