"""Generated code runs contained: each hostile program is stopped, confined and scored as it deserves.

Every program here is bounded (capped loops, short limits); containment is
checked from outside: files that must not appear, processes that must not be
left (found by scanning /proc for a marker in their command line), datagrams
that must not arrive.
"""

import os
import signal
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from t2reg.adaptation.tasks.builtin import code_check
from t2reg.adaptation.tasks.cgroups import Unavailable
from t2reg.adaptation.tasks.datasets import Example
from t2reg.adaptation.tasks.sandbox import Limits, namespaces_plan, per_run_limits, require_isolation, run_program
from t2reg.errors import InvalidInputError, IsolationUnavailableError

FAST = Limits(wall_seconds=5, cpu_seconds=5)


@pytest.fixture(autouse=True)
def isolation():
    """bubblewrap is a dependency (make test installs it): missing, these fail on CI and skip elsewhere."""
    try:
        namespaces_plan()
    except IsolationUnavailableError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"namespaces isolation unavailable on CI: {exc}")
        pytest.skip(str(exc))


@pytest.fixture
def outside(tmp_path):
    """A host folder anyone may write to: only the sandbox stands between a program and it."""
    os.chmod(tmp_path, 0o777)
    return tmp_path


def _alive(marker: str) -> list[int]:
    """Host PIDs of processes whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _sleeper(marker: str, own_session: bool = True) -> str:
    """Program text starting a long-lived process tagged with ``marker`` (in its own session, by default)."""
    return ("import subprocess, sys\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1000)', {marker!r}], "
            f"start_new_session={own_session})\n")


# -- what passing means -------------------------------------------------------------


def test_a_correct_program_passes_and_its_output_is_kept():
    result = run_program("def add(a, b):\n    return a + b\nassert add(2, 3) == 5\nprint('ok')", FAST)
    assert result.passed and result.completed and result.stdout.strip() == "ok"
    assert result.isolation == "namespaces"


def test_a_failing_assertion_fails():
    result = run_program("assert 1 + 1 == 3", FAST)
    assert not result.passed and not result.completed and "AssertionError" in result.stderr


@pytest.mark.parametrize("escape", ["raise SystemExit(0)", "import os\nos._exit(0)", "import sys\nsys.exit()",
                                    "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"])
def test_exiting_early_with_status_0_is_a_failure(escape):
    result = run_program(f"def add(a, b):\n    return a - b\n{escape}\nassert add(2, 3) == 5\n", FAST)
    assert not result.passed and not result.completed


def test_the_code_checker_scores_an_early_exit_as_wrong():
    example = Example("mbpp/1", "add two numbers", "", tests="assert add(2, 3) == 5\n", entry_point="",
                      solution="def add(a, b):\n    return a + b\n")  # the reference: its values are expected
    check = code_check(FAST)
    assert check(example, "```python\ndef add(a, b):\n    return a + b\n```")
    assert not check(example, "```python\ndef add(a, b):\n    return a - b\nraise SystemExit(0)\n```")
    assert not check(example, "```python\nimport os\ndef add(a, b):\n    return 0\nos._exit(0)\n```")


def test_rebinding_os_write_does_not_stop_an_honest_report():
    assert run_program("import os\nos.write = None\nassert True", FAST).passed


# -- limits ---------------------------------------------------------------------------


def test_an_infinite_loop_is_killed_at_the_wall_clock_limit():
    result = run_program("while True:\n    pass", Limits(wall_seconds=2, cpu_seconds=30))
    assert not result.passed and result.timed_out


def test_the_cpu_limit_counts_as_a_timeout():
    result = run_program("while True:\n    pass", Limits(wall_seconds=30, cpu_seconds=1))
    assert not result.passed and result.timed_out


def test_a_fork_bomb_is_contained_and_leaves_nothing():
    marker = f"t2reg-bomb-{uuid.uuid4().hex}"
    program = ("import subprocess, sys\nfor _ in range(500):\n"
               f"    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1000)', {marker!r}])\n")
    result = run_program(program, FAST)
    assert not result.passed and ("BlockingIOError" in result.stderr or "Resource temporarily" in result.stderr)
    assert _alive(marker) == []


@pytest.fixture
def per_run():
    """Per-run control groups: required on CI (root, cgroups writable); without them runs share rlimits."""
    found = per_run_limits()
    if isinstance(found, Unavailable):
        if os.environ.get("CI"):
            pytest.fail(f"per-run limits unavailable on CI: {found.reason}")
        pytest.skip(found.reason)
    return found


def test_a_fork_bomb_beside_eight_concurrent_runs_leaves_them_all_right(per_run):
    # The bomb holds every process its run may have while eight honest answers are scored. Counted per
    # host user (RLIMIT_NPROC), the bomb's processes left the others unable to start, scored as wrong.
    example = Example("mbpp/add", "add two numbers", "", tests="assert add(2, 3) == 5\n",
                      solution="def add(a, b):\n    return a + b\n")
    check = code_check(FAST)
    right = "```python\ndef add(a, b):\n    return a + b\n```"
    assert check(example, right)  # the reference's values are known before the bomb goes off
    marker = f"t2reg-bomb-{uuid.uuid4().hex}"
    bomb = ("import subprocess, time\nheld = []\ntry:\n    for _ in range(500):\n"
            f"        held.append(subprocess.Popen(['/bin/sh', '-c', 'sleep 1000; :', {marker!r}]))\n"
            "except OSError:\n    pass\nwhile any(p.poll() is None for p in held):\n    time.sleep(0.05)\n")
    with ThreadPoolExecutor(9) as pool:
        bombing = pool.submit(run_program, bomb, Limits(wall_seconds=60, cpu_seconds=60))
        deadline = time.monotonic() + 15
        while len(_alive(marker)) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_alive(marker)) >= 20, "the bomb never went off"
        verdicts = list(pool.map(lambda _: check(example, right), range(8)))
        held = len(_alive(marker))
        _kill_all(marker)
        bombing.result()
    assert verdicts == [True] * 8
    assert 20 <= held < 64  # the bomb filled its own run's budget (64 processes: sh and sleep each), no more
    assert _alive(marker) == []


def _kill_all(marker: str) -> None:
    for pid in _alive(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _anonymous_memory(marker: str) -> int:
    """Bytes of anonymous memory held by the processes tagged with ``marker`` together."""
    total = 0
    for pid in _alive(marker):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += sum(int(line.split()[1]) << 10 for line in status.splitlines() if line.startswith("RssAnon:"))
    return total


def test_four_processes_share_one_memory_cap(per_run):
    # Each child stays under the per-process cap; together they would hold 1.2 GB. The run's cap is 512 MiB.
    cap = 512 << 20
    marker = f"t2reg-memory-{uuid.uuid4().hex}"
    child = "x = b'x' * (300 << 20); import time; time.sleep(3)"
    program = (f"import subprocess, sys\nchildren = [subprocess.Popen([sys.executable, '-c', {child!r}, {marker!r}]) "
               "for _ in range(4)]\nprint([c.wait() for c in children])\n")
    peak = 0
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(run_program, program, Limits(wall_seconds=30, cpu_seconds=30, memory_bytes=cap))
        while not running.done():
            peak = max(peak, _anonymous_memory(marker))
            time.sleep(0.02)
        result = running.result()
    assert 250 << 20 < peak <= cap  # seen holding memory, never more than the run's cap together
    assert "-9" in result.stdout  # the memory controller killed some of them
    assert result.peak_memory_bytes is not None and result.peak_memory_bytes <= cap


def test_a_10_gb_allocation_fails():
    result = run_program("x = bytearray(10 * 1024 ** 3)\nprint(len(x))", FAST)
    assert not result.passed and "MemoryError" in result.stderr


def test_output_is_capped_and_the_run_killed():
    program = "import sys\nfor _ in range(50):\n    sys.stdout.write('x' * (1 << 20))\nsys.stdout.flush()\n"
    result = run_program(program, Limits(wall_seconds=30, output_bytes=1 << 20))
    assert result.output_exceeded and not result.passed and not result.completed
    assert len(result.stdout) <= 4000


def test_a_grandchild_holding_stdout_does_not_hold_the_call():
    # The program ends at once; its child keeps stdout open forever. The call must end with the
    # program (not at the wall-clock limit, far away here) and take the child with it.
    marker = f"t2reg-holder-{uuid.uuid4().hex}"
    result = run_program(_sleeper(marker) + "print('done')\n", Limits(wall_seconds=120, cpu_seconds=5))
    assert result.passed and not result.timed_out and result.stdout.strip() == "done"
    assert _alive(marker) == []


def test_the_wall_clock_limit_holds_with_a_grandchild_holding_the_pipes():
    marker = f"t2reg-holder-{uuid.uuid4().hex}"
    result = run_program(_sleeper(marker) + "while True:\n    pass\n", Limits(wall_seconds=2, cpu_seconds=30))
    assert result.timed_out and not result.passed
    assert _alive(marker) == []


@pytest.mark.parametrize("own_session", [True, False])
def test_no_process_outlives_the_call(own_session):
    marker = f"t2reg-orphan-{uuid.uuid4().hex}"
    result = run_program(_sleeper(marker, own_session), FAST)
    assert result.passed
    assert _alive(marker) == []


# -- confinement --------------------------------------------------------------------


def test_writes_inside_the_scratch_folder_work_and_vanish():
    result = run_program("import os\nopen('a.txt', 'w').write('hi')\nassert open('a.txt').read() == 'hi'\n"
                         "print(os.getcwd())", FAST)
    assert result.passed and result.stdout.strip() == "/scratch"


HOSTILE_WRITES = {
    "open": "open({target!r}, 'w').write('x')",
    "os.open with dir_fd": ("import os\nd = os.open({folder!r}, os.O_RDONLY)\n"
                            "os.close(os.open('escaped', os.O_WRONLY | os.O_CREAT, dir_fd=d))"),
    "sqlite3": "import sqlite3\nsqlite3.connect({target!r}).execute('create table t (x)')",
    "mkfifo": "import os\nos.mkfifo({target!r})",
    "shell through _posixsubprocess": (
        "import _posixsubprocess, os\n"
        "r, w = os.pipe()\n"
        "pid = _posixsubprocess.fork_exec([b'/bin/sh', b'-c', b'echo x > {target}'], [b'/bin/sh'], True, (), None,"
        " None, -1, -1, -1, -1, -1, -1, r, w, True, False, None, None, None, -1, None, False)\n"
        "os.waitpid(pid, 0)"),
}


@pytest.mark.parametrize("how", sorted(HOSTILE_WRITES))
def test_nothing_is_written_outside(outside, how):
    target = outside / "escaped"
    run_program(HOSTILE_WRITES[how].format(target=str(target), folder=str(outside)), FAST)
    assert list(outside.iterdir()) == []


def test_dev_shm_is_not_the_hosts():
    name = f"t2reg-{uuid.uuid4().hex}"
    run_program(f"open('/dev/shm/{name}', 'w').write('x')", FAST)
    assert not Path("/dev/shm", name).exists()


def test_the_hosts_files_are_not_there(outside):
    secret = outside / "secret.txt"
    secret.write_text("hunter2")
    os.chmod(secret, 0o644)
    result = run_program(f"print(open({str(secret)!r}).read())", FAST)
    assert not result.passed and "hunter2" not in result.stdout and "FileNotFoundError" in result.stderr


def test_no_datagram_reaches_the_hosts_loopback():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(0.5)
        port = server.getsockname()[1]
        run_program("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                    f"for _ in range(20):\n    s.sendto(b'escaped', ('127.0.0.1', {port}))\n", FAST)
        with pytest.raises(socket.timeout):
            server.recvfrom(100)


def test_no_connection_reaches_the_hosts_loopback():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        result = run_program(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)", FAST)
    assert not result.passed and ("ConnectionRefused" in result.stderr or "unreachable" in result.stderr)


def test_no_secrets_are_inherited(monkeypatch):
    monkeypatch.setenv("T2REG_SECRET_TOKEN", "hunter2")
    result = run_program("import os\nassert not any('SECRET' in k for k in os.environ), sorted(os.environ)", FAST)
    assert result.passed


def test_runs_as_an_unprivileged_user():
    result = run_program("import os\nprint(os.getuid(), os.geteuid())", FAST)
    assert result.stdout.split() == ["65534", "65534"]


# -- choosing the isolation ---------------------------------------------------------


def test_missing_bubblewrap_is_refused_with_the_way_out(tmp_path):
    with pytest.raises(IsolationUnavailableError, match="bubblewrap .* not installed.*T2REG_SANDBOX=weak"):
        namespaces_plan(str(tmp_path / "no-bwrap"))


def test_the_weak_isolation_runs_only_when_named(monkeypatch):
    result = run_program("assert 1 + 1 == 2", FAST, isolation="weak")
    assert result.passed and result.isolation == "weak"
    assert not run_program("raise SystemExit(0)\nassert False", FAST, isolation="weak").passed
    monkeypatch.setenv("T2REG_SANDBOX", "weak")
    assert run_program("assert True", FAST).isolation == "weak" and require_isolation() == "weak"
    monkeypatch.setenv("T2REG_SANDBOX", "none")
    with pytest.raises(InvalidInputError, match="T2REG_SANDBOX must be one of namespaces, weak"):
        run_program("assert True", FAST)
    with pytest.raises(InvalidInputError, match="isolation must be one of"):
        run_program("assert True", FAST, isolation="off")
