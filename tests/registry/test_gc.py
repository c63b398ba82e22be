"""gc never deletes what another registry, or a registry opened by mistake, still needs; purging frees deleted versions."""

import os
import uuid

import pytest

from t2reg.errors import ConflictError, NotFoundError
from t2reg.registry import Registry
from t2reg.settings import load_settings
from tests.cli.test_commands import CLI
from tests.helpers.experts import make_expert, write

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture
def second_url(backend, tmp_path, request):
    """A database URL for a second, independent registry on the same backend."""
    if backend == "postgres":
        server = request.getfixturevalue("postgres")
        return server.create_database(f"g_{uuid.uuid4().hex[:12]}", template=server.template)
    return f"sqlite:///{tmp_path / 'second' / 'registry.db'}"


@pytest.fixture
def pair(registry, second_url, tmp_path):
    """Two registries on one blob store: ``registry`` (the fixture) and a second one."""
    shared = registry.settings.blob_root
    other = Registry(load_settings(home=tmp_path / "second", database_url=second_url, blob_root=shared), create=True)
    yield registry, other
    other.close()


def _publish(registry, tmp_path, seed, name):
    path = write(make_expert(registry.model_shapes("smollm2-135m"), SMOL, seed=seed), tmp_path / f"{name}.safetensors")
    return registry.publish(path, name=name)


def _blob_count(registry):
    return len(list(registry.blobs.iter_blobs()))


def test_gc_honours_every_registry_it_can_open_on_a_shared_store(pair, tmp_path):
    first, second = pair
    _publish(first, tmp_path, 1, "mine")
    theirs = _publish(second, tmp_path, 2, "theirs")
    report = first.gc(grace_seconds=0)
    assert report.removed == () and len(report.shared_with) == 1
    assert second.read_expert(theirs.ref).n_params == theirs.n_params


def test_gc_refuses_a_shared_store_with_a_registry_it_cannot_open(pair, tmp_path, backend, request):
    first, second = pair
    _publish(first, tmp_path, 1, "mine")
    theirs = _publish(second, tmp_path, 2, "theirs")
    second.close()
    if backend == "postgres":
        import psycopg

        server = request.getfixturevalue("postgres")
        name = second.settings.database_url.rsplit("/", 1)[1]
        with psycopg.connect(f"host=127.0.0.1 port={server.port} user=t2reg dbname=postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}"')
    else:
        os.rename(tmp_path / "second" / "registry.db", tmp_path / "second" / "moved.db")
    with pytest.raises(ConflictError, match="shared with registries gc cannot open") as info:
        first.gc(grace_seconds=0)
    assert "{shared_ok}" not in str(info.value) and first.blobs.exists(theirs.sha256)
    assert not (tmp_path / "second" / "registry.db").exists()  # looking did not recreate it
    report = first.gc(grace_seconds=0, shared_ok=True)
    assert report.removed == (theirs.sha256,) and not first.blobs.exists(theirs.sha256)


def test_gc_on_a_registry_with_no_versions_refuses_to_empty_the_store(registry, tmp_path):
    _publish(registry, tmp_path, 1, "mine")
    lone = Registry(load_settings(home=tmp_path / "typo", blob_root=registry.settings.blob_root), create=True)
    registry.close()
    # the real registry is gone from the list of users (as if it were on a disk not mounted here)
    for marker, database in lone.blobs.users().items():
        if database != lone.db.identity:
            marker.unlink()
    with pytest.raises(ConflictError, match="holds no versions, yet gc would remove 1 blob"):
        lone.gc(grace_seconds=0)
    assert _blob_count(lone) == 1
    assert len(lone.gc(grace_seconds=0, force=True).removed) == 1
    lone.close()


def test_a_fresh_registry_with_nothing_to_remove_runs_gc_fine(registry):
    assert registry.gc(grace_seconds=0).removed == ()


def test_republishing_over_a_corrupt_blob_repairs_it(registry, tmp_path):
    first = _publish(registry, tmp_path, 1, "mine")
    path = registry.blobs.path(first.sha256)
    path.write_bytes(b"rot" + path.read_bytes()[3:])
    assert registry.verify().corrupt == (first.sha256,)
    again = registry.publish(tmp_path / "mine.safetensors", name="mine")
    assert again.sha256 == first.sha256 and again.version == 2
    assert registry.verify().ok
    registry.download(first.ref, tmp_path / "copy.safetensors")
    assert (tmp_path / "copy.safetensors").read_bytes() == (tmp_path / "mine.safetensors").read_bytes()


def test_purging_frees_deleted_versions_after_their_grace_and_never_reuses_numbers(registry, tmp_path):
    one = _publish(registry, tmp_path, 1, "mine")
    two = _publish(registry, tmp_path, 2, "mine")
    registry.delete(one.ref)
    kept = registry.gc(grace_seconds=0, purge_deleted=True)  # the default grace is days
    assert kept.purged == () and registry.blobs.exists(one.sha256)
    dry = registry.gc(grace_seconds=0, purge_deleted=True, purge_grace_seconds=0, dry_run=True)
    assert dry.purged == (one.ref,) and dry.removed == (one.sha256,) and registry.blobs.exists(one.sha256)
    done = registry.gc(grace_seconds=0, purge_deleted=True, purge_grace_seconds=0)
    assert done.purged == (one.ref,) and done.removed == (one.sha256,) and not registry.blobs.exists(one.sha256)
    assert registry.get(one.ref).status == "purged" and registry.get("mine").ref == two.ref
    with pytest.raises(NotFoundError, match="purged by gc"):
        registry.download(one.ref, tmp_path / "gone.safetensors")
    assert registry.verify().ok
    assert _publish(registry, tmp_path, 3, "mine").version == 3


def test_stray_files_in_the_store_are_reported_and_left_alone(registry, tmp_path):
    _publish(registry, tmp_path, 1, "mine")
    objects = registry.settings.blob_root / "sha256"
    strays = [objects / "stray", objects / "ab" / "not-a-sha", objects / "zz"]
    strays[0].write_text("x")
    strays[1].parent.mkdir(exist_ok=True)
    strays[1].write_text("x")
    strays[2].mkdir()
    assert set(registry.verify().strays) == {str(p) for p in strays}
    report = registry.gc(grace_seconds=0)
    assert report.removed == () and all(p.exists() for p in strays)


def test_gc_command_exit_codes_for_shared_and_empty_stores(tmp_path, capsys):
    blobs = tmp_path / "blobs"
    real = CLI(tmp_path / "real", capsys)
    real.base += ["--blobs", str(blobs)]
    expert = tmp_path / "e.safetensors"
    real.ok("new-expert", "--model", "smollm2-135m", "--task", "gsm8k", "--out", str(expert))
    real.ok("publish", str(expert))
    typo = CLI(tmp_path / "typo", capsys, init=False)
    typo.base += ["--blobs", str(blobs)]
    code, _, err = typo("gc", "--grace", "0")
    assert code == 3 and "no registry at" in err and "t2reg init" in err
    code, _, err = typo("gc", "--grace", "nan")
    assert code == 2
    (tmp_path / "real" / "registry.db").rename(tmp_path / "real" / "elsewhere.db")
    typo.ok("init")
    code, _, err = typo("gc", "--grace", "0")
    assert code == 5 and "--i-know-it-is-shared" in err and err.count("\n") == 1
    assert len(list((blobs / "sha256").rglob("*"))) == 2  # shard and blob, untouched
