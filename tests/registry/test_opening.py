"""A registry is opened, never conjured: what does not exist is refused, what cannot be written is still read."""

import os
import shutil
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import text

from t2reg.errors import DatabaseError, InvalidInputError, NotFoundError
from t2reg.registry import Registry, schema
from t2reg.registry.db import MissingDatabaseError
from t2reg.settings import load_settings
from tests.helpers.experts import make_expert, write
from tests.helpers.paths import ROOT

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _settings(tmp_path, url=None, name="home"):
    return load_settings(home=tmp_path / name, database_url=url, blob_root=tmp_path / "blobs")


def test_a_missing_sqlite_file_is_refused_and_not_created(tmp_path):
    with pytest.raises(MissingDatabaseError, match="no registry at .*typo.db.*; make one there") as info:
        Registry(load_settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'sub' / 'typo.db'}"))
    assert info.value.remedy.command == ("init",)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its folder


def test_an_empty_file_is_not_a_registry(tmp_path):
    (tmp_path / "registry.db").write_bytes(b"")
    with pytest.raises(MissingDatabaseError, match="empty file, not a registry"):
        Registry(load_settings(home=tmp_path))
    assert (tmp_path / "registry.db").stat().st_size == 0


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file::memory:?uri=true"])
def test_in_memory_databases_are_refused_even_by_init(tmp_path, url):
    for create in (False, True):
        with pytest.raises(InvalidInputError, match="in-memory database: it would keep nothing"):
            Registry(load_settings(home=tmp_path, database_url=url), create=create)


def test_create_makes_one_and_then_it_opens(tmp_path):
    Registry(_settings(tmp_path), create=True).close()
    with Registry(_settings(tmp_path)) as registry:
        assert registry.get_model("smollm2-135m").name == SMOL


def test_an_empty_database_on_either_backend_is_refused_without_create(backend, tmp_path, request):
    if backend == "postgres":
        server = request.getfixturevalue("postgres")
        url = server.create_database(f"e_{uuid.uuid4().hex[:12]}")  # exists, holds nothing
    else:
        import sqlite3

        url = f"sqlite:///{tmp_path / 'blank.db'}"
        sqlite3.connect(tmp_path / "blank.db").execute("PRAGMA user_version = 1").connection.close()
    with pytest.raises(MissingDatabaseError, match="holds no registry; make one there") as missing:
        Registry(_settings(tmp_path, url))
    assert missing.value.remedy.command == ("init",)
    Registry(_settings(tmp_path, url), create=True).close()
    Registry(_settings(tmp_path, url)).close()


def test_a_postgres_database_that_does_not_exist_says_so(postgres, tmp_path):
    url = postgres.url(f"missing_{uuid.uuid4().hex[:8]}")
    with pytest.raises(NotFoundError, match="does not exist; create it on the server, then make the registry") as info:
        Registry(_settings(tmp_path, url))
    assert info.value.remedy.command == ("init",)


def test_a_newer_schema_asks_for_a_newer_t2reg_not_an_upgrade(registry):
    with registry.db.session(write=True) as session:
        session.execute(text(f"UPDATE {schema.VERSION_TABLE} SET version_num = '9999'"))
    for attempt in (lambda: Registry(registry.settings), lambda: schema.upgrade(registry.db)):
        with pytest.raises(DatabaseError, match="upgrade t2reg") as info:
            attempt()
        assert info.value.remedy is None


def test_an_older_schema_is_upgraded_by_the_advice_it_gets(tmp_path):
    Registry(_settings(tmp_path), create=True).close()
    with Registry(_settings(tmp_path), check_schema=False) as registry:
        schema.downgrade(registry.db, "0003")
    with pytest.raises(DatabaseError, match="upgrade its schema") as info:
        Registry(_settings(tmp_path))
    assert info.value.remedy.command == ("db", "upgrade")
    with Registry(_settings(tmp_path), check_schema=False) as registry:
        schema.upgrade(registry.db)
    Registry(_settings(tmp_path)).close()


def _read_only_command(home, *args):
    """Run t2reg on a registry this process cannot write: a read-only bind mount as root, modes otherwise."""
    command = [sys.executable, "-m", "t2reg.cli", "--home", str(home), *args]
    if os.geteuid() != 0:
        return subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if shutil.which("unshare") is None:
        pytest.fail("util-linux unshare is needed to mount the registry read-only")
    script = f'mount --bind "{home}" "{home}" && mount -o remount,bind,ro "{home}" && exec "$@"'
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *command],
                          capture_output=True, text=True, cwd=ROOT)


def test_a_read_only_registry_serves_reads_and_refuses_writes(tmp_path):
    home = tmp_path / "home"
    with Registry(load_settings(home=home), create=True) as registry:
        expert = write(make_expert(registry.model_shapes("smollm2-135m"), SMOL), tmp_path / "e.safetensors")
        ref = registry.publish(expert).ref
    if os.geteuid() != 0:
        for path in [home, *home.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
    out = tmp_path / "out"
    out.mkdir()
    listed = _read_only_command(home, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert ref in listed.stdout
    copied = _read_only_command(home, "download", ref, "--out", str(out / "copy.safetensors"))
    assert copied.returncode == 0, copied.stderr
    assert (out / "copy.safetensors").read_bytes() == expert.read_bytes()
    verified = _read_only_command(home, "verify")
    assert verified.returncode == 0, verified.stderr
    refused = _read_only_command(home, "publish", str(expert), "--name", "another")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "read-only" in refused.stderr
