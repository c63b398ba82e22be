"""Connecting to Ray: the tests' runtime is on the loopback address only; a request the cluster can never
meet is refused by name; an address where nothing listens fails at submission with one line; and without
--replicas nothing changes: Ray is not even imported."""

import socket
import subprocess
import sys

import pytest

from t2reg.adaptation.distributed.cluster import place
from t2reg.adaptation.distributed.settings import ReplicaSettings
from t2reg.errors import InvalidInputError
from tests.cli.test_commands import CLI
from tests.helpers.data import require_data
from tests.helpers.paths import ROOT


def test_the_local_runtime_listens_on_the_loopback_address_only(ray_cluster):
    assert ray_cluster.startswith("127.0.0.1:")


def test_replicas_the_cluster_can_never_hold_are_refused_by_name(ray_cluster):
    assert place(ReplicaSettings(2)).num_cpus == 1 and place(ReplicaSettings(2)).device == "cpu"
    with pytest.raises(InvalidInputError) as caught:
        place(ReplicaSettings(2, threads=2))
    assert caught.value.render(lambda o: f"--{o}") == (
        "the Ray cluster has 2 CPU(s); 2 --replicas of 2 --threads need 4")
    with pytest.raises(InvalidInputError, match="has no GPU"):
        place(ReplicaSettings(1), device="cuda")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_address_where_nothing_listens_fails_with_one_line(world, capsys):
    cli = CLI(world.settings.home, capsys)
    address = f"127.0.0.1:{free_port()}"
    common = ["--task", "arc-easy", "--data-dir", str(require_data()), "--replicas", "2", "--ray", address]
    for args in (["adapt", "--model", "tiny", "--pool", "name=e1", *common], ["eval", "--base", "tiny", *common],
                 ["adapt", "--model", "tiny", "--pool", "name=e1", *common, "--detach"],
                 ["worker", "--once", "--replicas", "2", "--ray", f"ray://{address}"]):
        code, out, err = cli(*args)
        assert code == 1 and out == "", args
        assert err.splitlines() == [f"t2reg: error: cannot reach a Ray cluster at {address if args[0] != 'worker' else 'ray://' + address} (--ray): connection refused"], err
    assert world.jobs.list() == []  # refused before any job was queued


def test_replica_flags_need_replicas(world, capsys):
    code, _, err = CLI(world.settings.home, capsys)("eval", "--base", "tiny", "--task", "arc-easy", "--threads", "2")
    assert code == 4 and err == "t2reg: error: --threads only applies with --replicas\n"


def test_without_replicas_ray_is_not_imported(world):
    script = f"""
import sys
from t2reg.cli.main import _run
home, data = {str(world.settings.home)!r}, {str(require_data())!r}
for args in (["adapt", "--model", "tiny", "--task", "arc-easy", "--pool", "name in (e1,e2)", "--shots", "2",
              "--heldout", "2", "--population", "2", "--iterations", "1", "--data-dir", data, "--name", "plain"],
             ["eval", "--base", "tiny", "--task", "arc-easy", "--limit", "2", "--data-dir", data]):
    assert _run(["--home", home, *args], debug=True) == 0
print(sorted(m for m in sys.modules if m == "ray" or m.startswith("ray.")))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
