from pathlib import Path

from t2reg.settings import load_settings


def test_defaults_live_under_home(tmp_path):
    s = load_settings(environ={"T2REG_HOME": str(tmp_path)})
    assert s.home == tmp_path
    assert s.database_url == f"sqlite:///{tmp_path / 'registry.db'}"
    assert s.blob_root == tmp_path / "blobs"
    assert s.is_embedded


def test_flags_override_environment(tmp_path):
    env = {"T2REG_HOME": "/nowhere", "T2REG_DATABASE_URL": "sqlite:///env.db", "T2REG_BLOB_ROOT": "/env-blobs"}
    s = load_settings(home=tmp_path, database_url="postgresql+psycopg://u@h/db", blob_root=tmp_path / "b", environ=env)
    assert (s.home, s.database_url, s.blob_root) == (tmp_path, "postgresql+psycopg://u@h/db", tmp_path / "b")
    assert not s.is_embedded


def test_environment_overrides_defaults():
    s = load_settings(environ={"T2REG_HOME": "/tmp/h", "T2REG_DATABASE_URL": "sqlite:///x.db"})
    assert s.database_url == "sqlite:///x.db" and s.blob_root == Path("/tmp/h/blobs")
