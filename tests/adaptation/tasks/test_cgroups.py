"""Per-run control groups, made and removed for real (root or a delegated cgroup tree; CI has one)."""

import os
import subprocess
import time

import pytest

from t2reg.adaptation.tasks import cgroups


@pytest.fixture
def where():
    """The hierarchy run groups are made in: required on CI (root, cgroups writable), skipped where there is none."""
    found = cgroups.hierarchy()
    if isinstance(found, cgroups.Unavailable):
        if os.environ.get("CI"):
            pytest.fail(f"per-run control groups unavailable on CI: {found.reason}")
        pytest.skip(found.reason)
    return found


def test_a_group_carries_the_runs_limits_and_goes_away(where):
    group = cgroups.new_group(where, 300 << 20, 7)
    try:
        assert all(folder.is_dir() for folder in group.folders)
        if where.version == 1:
            memory, pids = group.folders
            assert int((memory / "memory.limit_in_bytes").read_text()) == 300 << 20
            assert (pids / "pids.max").read_text().strip() == "7"
        else:
            (folder,) = group.folders
            assert int((folder / "memory.max").read_text()) == 300 << 20
            assert (folder / "pids.max").read_text().strip() == "7"
    finally:
        group.close()
    assert not any(folder.exists() for folder in group.folders)


def test_closing_a_group_kills_what_is_left_in_it(where):
    group = cgroups.new_group(where, 64 << 20, 8)
    files = group.procs_files
    sleeper = subprocess.Popen(["sleep", "1000"], preexec_fn=lambda: cgroups.join(files))
    try:
        assert str(sleeper.pid) in (group.folders[-1] / "cgroup.procs").read_text().split()
        group.close()
        assert sleeper.wait(timeout=10) == -9
        assert not any(folder.exists() for folder in group.folders)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_groups_left_by_a_dead_process_are_removed_when_the_next_one_starts(where):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = [parent / f"t2reg-{dead.pid}-0" for parent in where.parents]
    for folder in stale:
        folder.mkdir()
    cgroups.hierarchy.cache_clear()
    try:
        assert cgroups.hierarchy() == where
    finally:
        for folder in stale:
            if folder.exists():
                folder.rmdir()
    assert not any(folder.exists() for folder in stale)


def test_no_group_outlives_the_runs_of_this_process(where):
    from t2reg.adaptation.tasks.sandbox import run_program

    run_program("print(1)")
    time.sleep(0.1)
    mine = [p for parent in where.parents for p in parent.glob(f"t2reg-{os.getpid()}-*")]
    assert mine == []
