"""Input an adversarial user tried: every one gets its one line and its exit code, and destroys nothing."""

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from t2reg.registry import Registry
from t2reg.settings import load_settings
from tests.cli.test_commands import CLI
from tests.helpers.paths import ROOT

HUGE = "99999999999999999999"


@pytest.fixture
def cli(tmp_path, capsys):
    runner = CLI(tmp_path / "home", capsys)
    runner.ok("new-expert", "--model", "smollm2-135m", "--task", "gsm8k", "--out", str(tmp_path / "e.safetensors"))
    runner.ok("publish", str(tmp_path / "e.safetensors"))
    return runner


def _fails(cli, code, words, *args):
    got, out, err = cli(*args)
    assert (got, err.count("\n")) == (code, 1), err
    assert words in err and "internal error" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("source", ["..", ".", "../..", "a/../..", "models/../.."])
def test_model_add_with_a_path_as_name_destroys_nothing(cli, tmp_path, source):
    home = tmp_path / "home"
    (home / "models").mkdir(exist_ok=True)
    (home / "models" / "keep").write_text("converted model")
    gguf = tmp_path / "weights.gguf"
    gguf.write_bytes(b"GGUF")
    _fails(cli, 4, "model name", "model", "add", source, "--gguf", str(gguf))
    assert (home / "registry.db").is_file() and (home / "models" / "keep").read_text() == "converted model"
    assert cli.json("list")[0]["ref"] == "gsm8k-smollm2-135m:1"


@pytest.mark.parametrize("args, code, words", [
    (["show", f"gsm8k-smollm2-135m:{HUGE}"], 4, "whole number from 1"),
    (["show", "gsm8k-smollm2-135m:²"], 4, "whole number from 1"),
    (["best", "--task", "gsm8k", "--limit", HUGE], 4, "--limit must be at most"),
    (["record", "gsm8k-smollm2-135m:1", "--metric", "accuracy=0.5", "--n", HUGE], 4, "--n must be at most"),
    (["record", "gsm8k-smollm2-135m:1", "--metric", "accuracy=0.5", "--n", "0"], 4, "--n must be at least 1"),
    (["record", "gsm8k-smollm2-135m:1", "--metric", "accuracy=0.5", "--split", "a b"], 4, "split"),
    (["jobs", "show", HUGE], 3, f"no job {HUGE}"),
    (["jobs", "show", "0"], 3, "no job 0"),
    (["jobs", "list", "--limit", HUGE], 4, "--limit must be at most"),
    (["list", "--where", ""], 4, "empty filter"),
    (["list", "--where", " , "], 4, "empty filter"),
    (["download", "gsm8k-smollm2-135m:1", "--out", ""], 2, "the path is empty"),
    (["download", "gsm8k-smollm2-135m:1", "--out", "/nonexistent-t2reg/dir/x"], 4, "is not a directory"),
    (["gc", "--grace", "nan"], 2, "not a finite number"),
    (["gc", "--grace", "inf"], 2, "not a finite number"),
    (["db", "downgrade", "9999"], 4, "9999"),
    (["publish", "/dev/zero"], 4, "not a regular file"),
    (["model", "add", "owner/name", "--revision", "../../etc"], 4, "--revision"),
    (["record", "gsm8k-smollm2-135m:1", "--metric", "gsm8k:accuracy=2"], 4, "proportion, from 0 to 1"),
    (["record", "gsm8k-smollm2-135m:1", "--metric", "gsm8k:accuracy=-5"], 4, "proportion, from 0 to 1"),
    (["alias", "gsm8k-smollm2-135m:1", "prod\n"], 4, "alias"),
    (["record", "gsm8k-smollm2-135m:1", "--metric", "accuracy=0.5", "--split", "test\n"], 4, "split"),
    (["tag", "gsm8k-smollm2-135m:1", "k=v\n"], 4, "control character"),
])
def test_bad_input_gets_its_exit_code(cli, args, code, words):
    _fails(cli, code, words, *args)


def test_a_name_ending_in_a_newline_is_refused(cli, tmp_path):
    _fails(cli, 4, "expert name", "publish", str(tmp_path / "e.safetensors"), "--name", "evil\n")
    assert [v["ref"] for v in cli.json("list")] == ["gsm8k-smollm2-135m:1"]


@pytest.mark.parametrize("args", [["show", "x" * 100_000], ["show", "x" * 100_000 + ":1"], ["list", "--model", "m" * 100_000],
                                  ["record", "gsm8k-smollm2-135m:1", "--metric", "gsm8k:accuracy=" + "9" * 100_000],
                                  ["list", "--where", "k" * 100_000]])
def test_a_100k_character_input_comes_back_clipped(cli, args):
    _, _, err = cli(*args)
    assert err.count("\n") == 1 and len(err) < 400 and "characters)" in err, err[:300]


@pytest.mark.parametrize("db, code, words", [
    ("postgresql+psycopg://::::", 4, "not a database URL"),
    ("postgresql+psycopg://u:secret@h:notaport/db", 4, "not a database URL"),
    ("sqlite://", 4, "in-memory database"),
    ("sqlite:///:memory:", 4, "in-memory database"),
])
def test_malformed_and_in_memory_database_urls(tmp_path, capsys, db, code, words):
    runner = CLI(tmp_path / "home", capsys, db=db, init=False)
    for command in (["init"], ["list"], ["publish", "x.safetensors"]):
        err = _fails(runner, code, words, *command)
        assert "secret" not in err


def test_a_mistyped_database_is_not_created(tmp_path, capsys):
    typo = tmp_path / "regsitry.db"
    runner = CLI(tmp_path / "home", capsys, db=f"sqlite:///{typo}", init=False)
    for command in (["list"], ["verify"], ["gc"], ["publish", "x.safetensors"], ["db", "upgrade"], ["db", "current"]):
        _fails(runner, 3, "make one there: `t2reg init`", *command)
    assert not typo.exists()


def test_a_zero_length_registry_fails_verify_and_gc(tmp_path, capsys):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "registry.db").write_bytes(b"")
    runner = CLI(tmp_path / "home", capsys, init=False)
    for command in (["verify"], ["gc", "--grace", "0", "--force"]):
        _fails(runner, 3, "empty file, not a registry", *command)


def test_non_regular_output_paths_are_refused_and_left_as_they_are(cli, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "link").symlink_to(fifo)
    refusals = {fifo: (4, "exists and is not a regular file"), tmp_path / "link": (4, "exists and is not a regular file"),
                tmp_path: (2, "is a directory")}
    for out, (code, words) in refusals.items():
        _fails(cli, code, words, "download", "gsm8k-smollm2-135m:1", "--out", str(out))
        _fails(cli, code, words, "new-expert", "--model", "smollm2-135m", "--out", str(out))
    assert fifo.is_fifo() and (tmp_path / "link").is_symlink()


def test_publishing_a_fifo_does_not_block(cli, tmp_path):
    os.mkfifo(tmp_path / "fifo")
    _fails(cli, 4, "not a regular file", "publish", str(tmp_path / "fifo"))


def test_a_nonsense_job_timeout_is_refused_before_it_reaches_a_worker(cli, monkeypatch):
    for value in ("inf", "nan", "-1", "1e400", "soon"):
        monkeypatch.setenv("T2REG_JOB_TIMEOUT", value)
        _fails(cli, 4, "T2REG_JOB_TIMEOUT must be a positive, finite number", "jobs", "list")


def test_a_stray_file_in_the_blob_store_breaks_neither_verify_nor_gc(cli, tmp_path):
    stray = tmp_path / "home" / "blobs" / "sha256" / "stray"
    stray.write_text("x")
    assert "stray" in cli.ok("verify")
    cli.ok("gc", "--grace", "0")
    assert stray.exists()


def test_a_database_from_a_newer_t2reg_is_refused_with_advice_that_works(cli, tmp_path):
    with Registry(load_settings(home=tmp_path / "home")) as registry, registry.db.session(write=True) as session:
        session.execute(text("UPDATE t2reg_alembic_version SET version_num = '9999'"))
    for command in (["list"], ["db", "upgrade"]):
        err = _fails(cli, 1, "upgrade t2reg", *command)
        assert "db upgrade`" not in err


def test_control_characters_never_reach_the_terminal(cli, tmp_path):
    # Written straight into the database, as an older t2reg (or another tool) could have.
    with Registry(load_settings(home=tmp_path / "home")) as registry, registry.db.session(write=True) as session:
        session.execute(text("UPDATE experts SET description = :d"), {"d": "ok\x1b]0;pwned\x07\x1b[2J\u202eevil"})
        session.execute(text("INSERT INTO version_tags (version_id, key, value) VALUES (1, 'k', :v)"),
                        {"v": "\x1b[31mred"})
    out = cli.ok("show", "gsm8k-smollm2-135m:1")
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b]0;pwned\\x07" in out and "\\u202e" in out
    assert "\x1b" not in _fails(cli, 4, "control character", "list", "--where", "tag.k=\x1b[31mred")
    err = _fails(cli, 4, "bad reference", "show", "x\x1b[2Jy:1")
    assert "\x1b" not in err
    _fails(cli, 4, "control character", "publish", str(tmp_path / "e.safetensors"), "--description", "\x1b[2J")


def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    # Wherever it lands (importing, the worker's wait): never a traceback, and the status a shell reports
    # as 130. Before Python installs any handler the signal itself ends the process (status -SIGINT).
    Registry(load_settings(home=tmp_path), create=True).close()
    for delay in (0.3, 0.6, 1.0, None):
        proc = subprocess.Popen([sys.executable, "-m", "t2reg.cli", "--home", str(tmp_path), "worker"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        if delay is None:
            assert "worker" in proc.stderr.readline()  # it says so when it starts waiting
        else:
            time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        if "init_import_site" in err:
            continue  # landed in Python's own start-up (site.py), before any t2reg code: out of its reach
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
        if proc.returncode == -signal.SIGINT:
            assert err == ""
        else:
            assert proc.returncode == 130 and err.strip().splitlines()[-1] == "t2reg: error: interrupted", err
            assert err.count("interrupted") == 1


def test_every_read_command_works_on_what_an_unchecked_import_stored(registry, tmp_path, capsys):
    from tests.registry.test_bundles import PROTOCOL, _poison_as_an_unchecked_import_did

    ref = _poison_as_an_unchecked_import_did(registry, tmp_path)
    runner = CLI(registry.settings.home, capsys, db=registry.settings.database_url, init=False)
    assert "a spec this t2reg cannot read" in runner.ok("protocols")
    assert "a spec this t2reg cannot read" in runner.ok("best", "--task", "gsm8k", "--protocol", PROTOCOL.id)
    assert "parent:1" in runner.ok("best", "--task", "gsm8k", "--protocol", "reported:gsm8k")
    for args in (["protocols", "--json"], ["best", "--task", "gsm8k", "--json"], ["list"], ["list", "--json"],
                 ["show", ref], ["show", ref, "--json"], ["bundle", "export", ref, "--out", str(tmp_path / "b"),
                                                          "--with-lineage"]):
        runner.ok(*args)
    assert "nested more than 8 levels" in runner.ok("show", ref)
    _fails(runner, 4, "a protocol spec has no field", "compare", "parent:1", ref, "--protocol", PROTOCOL.id)


def test_a_database_of_another_application_is_refused_by_every_command_init_included(tmp_path, capsys):
    import sqlite3

    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE accounts (id INTEGER)")
    runner = CLI(tmp_path / "home", capsys, db=f"sqlite:///{path}", init=False)
    for command in (["list"], ["init"], ["db", "upgrade"], ["protocols"]):
        _fails(runner, 4, "not a t2reg registry", *command)
    with sqlite3.connect(path) as conn:
        assert [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["accounts"]


def test_out_onto_a_symlink_to_an_empty_folder_is_refused_and_left_alone(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    for command in (["bundle", "export"], ["export"]):  # export refuses before it loads any model
        _fails(cli, 4, "is a symlink", *command, "gsm8k-smollm2-135m:1", "--out", str(tmp_path / "link"))
    assert (tmp_path / "link").is_symlink() and os.listdir(tmp_path / "empty") == []


def test_out_ending_in_a_slash_names_a_folder(cli, tmp_path):
    """One rule: a command that writes a file refuses DIR/, one that writes a folder creates DIR."""
    for command in (["download", "gsm8k-smollm2-135m:1"], ["new-expert", "--model", "smollm2-135m"],
                    ["jobs", "plot", "1"]):
        _fails(cli, 2, "ends in '/'", *command, "--out", f"{tmp_path / 'dir'}/")
    assert not (tmp_path / "dir").exists()
    cli.ok("bundle", "export", "gsm8k-smollm2-135m:1", "--out", f"{tmp_path / 'new' / 'bundle'}/")
    assert (tmp_path / "new" / "bundle" / "t2reg.json").is_file()


def _peak_rss_of(args, home):
    """Run t2reg in a child process: its exit code, stderr and peak resident memory in bytes (Linux: KiB)."""
    proc = subprocess.Popen([sys.executable, "-m", "t2reg.cli", "--home", str(home), *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, err, usage.ru_maxrss * 1024


@pytest.mark.parametrize("head", ["junk", "an expert's header, then a gigabyte"])
def test_publishing_a_gigabyte_file_is_refused_from_its_header(cli, tmp_path, head):
    big = tmp_path / "big.safetensors"
    good = (tmp_path / "e.safetensors").read_bytes()
    with big.open("wb") as fh:  # sparse: the test itself writes a few bytes
        fh.write(os.urandom(64) if head == "junk" else good)
        fh.truncate(10**9)
    code, err, peak = _peak_rss_of(["publish", str(big)], tmp_path / "home")
    assert code == 4 and err.count("\n") == 1, err
    assert ("8 bytes claim" in err or "not a safetensors file" in err) if head == "junk" else "header describes" in err
    baseline = _peak_rss_of(["publish", str(tmp_path / "missing.safetensors")], tmp_path / "home")[2]
    assert peak < baseline + 100 * 2**20, (peak, baseline)  # reading it all would add 1 GB
