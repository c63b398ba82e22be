"""Generated code runs contained: each of these is stopped and scored as a failure."""

import os
import time

import pytest

from t2reg.adaptation.tasks.sandbox import Limits, run_program

FAST = Limits(wall_seconds=3, cpu_seconds=3)


def test_a_correct_program_passes_and_its_output_is_kept():
    result = run_program("def add(a, b):\n    return a + b\nassert add(2, 3) == 5\nprint('ok')", FAST)
    assert result.passed and result.stdout.strip() == "ok"


def test_a_failing_assertion_fails():
    result = run_program("assert 1 + 1 == 3", FAST)
    assert not result.passed and "AssertionError" in result.stderr


def test_an_infinite_loop_is_killed_at_the_wall_clock_limit():
    start = time.monotonic()
    result = run_program("while True:\n    pass", FAST)
    assert not result.passed and result.timed_out and time.monotonic() - start < 10


def test_a_fork_bomb_is_contained():
    result = run_program("import os\nwhile True:\n    os.fork()", FAST)
    assert not result.passed and "not allowed" in result.stderr


def test_a_fork_bomb_through_subprocess_is_contained():
    result = run_program("import subprocess, sys\nwhile True:\n    subprocess.Popen([sys.executable, '-c', 'pass'])", FAST)
    assert not result.passed


def test_a_10_gb_allocation_fails():
    result = run_program("x = bytearray(10 * 1024 ** 3)\nprint(len(x))", FAST)
    assert not result.passed and "MemoryError" in result.stderr


def test_a_write_outside_the_temp_dir_is_refused(tmp_path):
    target = tmp_path / "escaped.txt"
    os.chmod(tmp_path, 0o777)  # even where the file system would allow it
    result = run_program(f"open({str(target)!r}, 'w').write('x')", FAST)
    assert not result.passed and not target.exists()
    result = run_program(f"import os\nos.remove({str(__file__)!r})", FAST)
    assert not result.passed and os.path.exists(__file__)


def test_writes_inside_the_temp_dir_work_and_vanish():
    result = run_program("import os\nopen('a.txt', 'w').write('hi')\nprint(os.getcwd())", FAST)
    assert result.passed and not os.path.exists(result.stdout.strip())


def test_no_secrets_are_inherited(monkeypatch):
    monkeypatch.setenv("T2REG_SECRET_TOKEN", "hunter2")
    result = run_program("import os\nassert not any('SECRET' in k for k in os.environ), sorted(os.environ)", FAST)
    assert result.passed


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges only happens when run as root")
def test_runs_as_nobody_when_started_as_root():
    assert run_program("import os\nprint(os.getuid())", FAST).stdout.strip() == "65534"
