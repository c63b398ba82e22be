"""The sharing commands end to end, as real processes: init --blobs db, blobs migrate, bundle export/import,
hub push/pull (pull from a pre-filled offline Hugging Face cache; nothing here reaches the Hub)."""

import hashlib
import json
import os
import subprocess
import sys
import uuid

import pytest

from t2reg.registry.bundles.card import read_front_matter
from tests.helpers.experts import make_expert, write
from tests.helpers.paths import ROOT

T2REG = [sys.executable, "-m", "t2reg.cli"]
SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


class Home:
    """One registry home driven through the real console entry point."""

    def __init__(self, path, db=None, **env):
        self.base = ["--home", str(path)] + (["--db", db] if db else [])
        self.env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1", **env}

    def __call__(self, *args, env=None):
        return subprocess.run([*T2REG, *self.base, *args], capture_output=True, text=True, cwd=ROOT,
                              env={**self.env, **(env or {})}, timeout=300)

    def ok(self, *args, **kw):
        done = self(*args, **kw)
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture
def expert(tmp_path):
    from t2reg.registry import Registry
    from t2reg.settings import load_settings

    with Registry(load_settings(home=tmp_path / "scratch"), create=True) as scratch:
        shapes = scratch.model_shapes("smollm2-135m")
    return lambda seed=0: write(make_expert(shapes, SMOL, seed=seed), tmp_path / f"e{seed}.safetensors")


def _pg_url(request):
    server = request.getfixturevalue("postgres")
    return server.create_database(f"s_{uuid.uuid4().hex[:12]}")


def test_init_blobs_db_then_every_machine_finds_the_blobs_in_the_database(backend, request, tmp_path, expert):
    db = _pg_url(request) if backend == "postgres" else f"sqlite:///{tmp_path / 'shared.db'}"
    first = Home(tmp_path / "one", db)
    assert "blobs in the database" in first.ok("init", "--blobs", "db")
    ref = first.ok("publish", str(expert()), "--metric", "gsm8k:accuracy=0.5").strip()
    second = Home(tmp_path / "two", db)  # another home: no blob folder, no T2REG_BLOB_ROOT
    second.ok("download", ref, "--out", str(tmp_path / "copy.safetensors"))
    assert (tmp_path / "copy.safetensors").read_bytes() == expert().read_bytes()
    assert not (tmp_path / "one" / "blobs").exists() and not (tmp_path / "two" / "blobs").exists()
    assert json.loads(second.ok("verify", "--json"))["ok"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_blobs_migrate_to_db(backend, tmp_path, expert):
    home = Home(tmp_path / "home")
    home.ok("init")
    refs = [home.ok("publish", str(expert(i)), "--name", f"e{i}").strip() for i in range(2)]
    asked = home("--blobs", "db", "list")
    assert asked.returncode == 5 and "t2reg blobs migrate --to db" in asked.stderr and asked.stderr.count("\n") == 1
    out = home.ok("blobs", "migrate", "--to", "db")
    assert "2 blob(s) in the database (2 copied now" in out
    assert "0 copied now, 2 already there" in home.ok("blobs", "migrate", "--to", "db")
    os.rename(tmp_path / "home" / "blobs", tmp_path / "old-blobs")
    for i, ref in enumerate(refs):
        home.ok("download", ref, "--out", str(tmp_path / "out.safetensors"))
        assert (tmp_path / "out.safetensors").read_bytes() == expert(i).read_bytes()


def _bundle(tmp_path, expert):
    home = Home(tmp_path / "source")
    home.ok("init")
    parent = home.ok("publish", str(expert(0)), "--name", "parent", "--metric", "gsm8k:accuracy=0.4",
                     "--split", "test", "--n", "100").strip()
    home.ok("alias", parent, "production")
    home.ok("bundle", "export", parent, "--out", str(tmp_path / "bundle"))
    return parent


@pytest.mark.parametrize("backend", ["sqlite"])
def test_bundle_export_and_import_between_homes(backend, tmp_path, expert):
    ref = _bundle(tmp_path, expert)
    card = read_front_matter((tmp_path / "bundle" / "README.md").read_text())
    assert card["base_model"] == SMOL and card["model-index"][0]["results"][0]["metrics"][0]["args"]["n"] == 100
    target = Home(tmp_path / "target")
    target.ok("init")
    done = json.loads(target.ok("bundle", "import", str(tmp_path / "bundle"), "--json"))
    assert done["root"] == ref and done["created"] == [ref]
    again = target("bundle", "import", str(tmp_path / "bundle"))
    assert again.returncode == 0 and "0 version(s) added, 1 already here; 0 score(s) added" in again.stderr
    shown = json.loads(target.ok("show", "parent@production", "--json"))
    assert [(e["value"], e["n"], e["split"]) for e in shown["evaluations"]] == [(0.4, 100, "test")]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_tampered_bundle_is_one_line_exit_4_and_nothing_written(backend, tmp_path, expert):
    _bundle(tmp_path, expert)
    blob = next((tmp_path / "bundle" / "experts").iterdir())
    blob.write_bytes(blob.read_bytes()[:-1] + b"\0")
    target = Home(tmp_path / "target")
    target.ok("init")
    refused = target("bundle", "import", str(tmp_path / "bundle"))
    assert refused.returncode == 4 and refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert "does not match its sha256" in refused.stderr
    assert json.loads(target.ok("list", "--json")) == []


def _fill_hf_cache(cache, repo, bundle, commit):
    """Lay a bundle out in the Hugging Face cache as huggingface_hub itself does: files under blobs/ named by
    their hash, a snapshot folder of relative symlinks to them, and refs/main naming the commit."""
    storage = cache / f"models--{repo.replace('/', '--')}"
    snapshot = storage / "snapshots" / commit
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        data = path.read_bytes()
        blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / path.relative_to(bundle)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(commit)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_hub_pull_offline_imports_from_the_local_cache(backend, tmp_path, expert):
    ref = _bundle(tmp_path, expert)
    commit = "0123456789abcdef0123456789abcdef01234567"
    _fill_hf_cache(tmp_path / "hf", "org/arc-easy-smol", tmp_path / "bundle", commit)
    offline = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf")}
    target = Home(tmp_path / "target", **offline)
    target.ok("init")
    assert target.ok("hub", "pull", "org/arc-easy-smol").strip() == ref
    assert target.ok("hub", "pull", "org/arc-easy-smol", "--revision", commit).strip() == ref  # idempotent
    assert json.loads(target.ok("show", ref, "--json"))["aliases"] == ["production"]
    missing = target("hub", "pull", "org/not-cached")
    assert missing.returncode == 3 and "not in the local Hugging Face cache" in missing.stderr
    assert missing.stderr.count("\n") == 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_hub_pull_refuses_a_cache_link_leaving_the_repository(backend, tmp_path, expert):
    _bundle(tmp_path, expert)
    commit = "0123456789abcdef0123456789abcdef01234567"
    _fill_hf_cache(tmp_path / "hf", "org/x", tmp_path / "bundle", commit)
    manifest = tmp_path / "hf" / "models--org--x" / "snapshots" / commit / "t2reg.json"
    manifest.unlink()
    manifest.symlink_to(tmp_path / "bundle" / "t2reg.json")  # outside models--org--x
    target = Home(tmp_path / "target", HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hf"))
    target.ok("init")
    refused = target("hub", "pull", "org/x")
    assert refused.returncode == 4 and "symlink" in refused.stderr
    assert json.loads(target.ok("list", "--json")) == []


@pytest.mark.parametrize("backend", ["sqlite"])
def test_hub_push_offline_is_refused_in_one_line(backend, tmp_path, expert):
    ref = _bundle(tmp_path, expert)
    home = Home(tmp_path / "source", HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hf"))
    refused = home("hub", "push", ref, "--repo", "org/x")
    assert refused.returncode == 1 and "HF_HUB_OFFLINE is set" in refused.stderr
    assert refused.stderr.count("\n") == 1
    bad = home("hub", "push", ref, "--repo", "not a repo")
    assert bad.returncode == 4 and "not a Hugging Face repository id" in bad.stderr


@pytest.mark.parametrize("backend", ["sqlite"])
def test_hub_pull_imports_a_snapshot_of_the_repository_and_nothing_else(backend, tmp_path, expert):
    _bundle(tmp_path, expert)
    commit = "0123456789abcdef0123456789abcdef01234567"
    _fill_hf_cache(tmp_path / "hf", "org/x", tmp_path / "bundle", commit)
    os.rename(tmp_path / "bundle", tmp_path / "outside")  # a good bundle, but not in the cache
    target = Home(tmp_path / "target", HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hf"))
    target.ok("init")
    for revision in (f"../snapshots/{commit}", "../../../outside", "main/../../x", "main\n"):
        refused = target("hub", "pull", "org/x", "--revision", revision)
        assert (refused.returncode, refused.stderr.count("\n")) == (4, 1), refused.stderr
        assert "--revision" in refused.stderr and "internal error" not in refused.stderr
    (tmp_path / "hf" / "models--org--x" / "refs" / "main").write_text("../../../outside")
    refused = target("hub", "pull", "org/x")
    assert refused.returncode == 4 and "not a commit's folder" in refused.stderr and refused.stderr.count("\n") == 1
    assert json.loads(target.ok("list", "--json")) == []
    (tmp_path / "hf" / "models--org--x" / "refs" / "main").write_text(commit)
    assert target.ok("hub", "pull", "org/x").strip() == "parent:1"
