"""`t2reg serve` as a real subprocess on a free loopback port, and clients for it."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

from tests.helpers.paths import ROOT

READY = re.compile(r"t2reg: serving .* on (http://\S+/v1)")


class ServerProcess:
    """``t2reg --home HOME serve --port 0 ARGS`` started and waited for (its ready line names the port)."""

    def __init__(self, home: Path, *args: str, log: Path, env: dict[str, str] | None = None, timeout: float = 600):
        command = [sys.executable, "-m", "t2reg.cli", "--home", str(home), "serve", "--port", "0", *args]
        self.log = log
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log.open("w"), text=True, cwd=ROOT,
                                     env={**os.environ, **(env or {})})
        self.base_url = self._wait_ready(timeout)
        self.root = self.base_url.removesuffix("/v1")
        # Keep reading stdout after the ready line: the vllm backend's scheduler processes log there, and a full
        # pipe would block them mid-request.
        threading.Thread(target=self._drain, args=(log.with_suffix(".stdout"),), daemon=True).start()

    def _drain(self, path: Path) -> None:
        with path.open("w") as out:
            for line in self.proc.stdout:
                out.write(line)

    def _wait_ready(self, timeout: float) -> str:
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if selector.select(timeout=1.0):
                line = self.proc.stdout.readline()
                found = READY.search(line)
                if found:
                    return found.group(1)
                if not line and self.proc.poll() is not None:
                    break
            elif self.proc.poll() is not None:
                break
        self.proc.kill()
        raise AssertionError(f"the server did not start (exit {self.proc.poll()}):\n{self.log.read_text()[-4000:]}")

    def client(self, api_key: str = "unused", **options):
        from openai import OpenAI

        return OpenAI(base_url=self.base_url, api_key=api_key, max_retries=0, timeout=300, **options)

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int:
        """Send ``sig`` and wait for the exit code (killed after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample (0 when absent), summed over label sets that include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, rest = head.partition("{")
        if sample != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


def t2reg(home: Path, *args: str) -> None:
    from t2reg.cli.main import _run

    assert _run(["--home", str(home), *args], debug=True) == 0, args


def publish_noise_expert(home: Path, tmp: Path, name: str, task: str, seed: int, score: float | None = None) -> None:
    path = tmp / f"{name}.safetensors"
    t2reg(home, "new-expert", "--model", "tiny", "--task", task, "--noise", "0.5", "--seed", str(seed), "--out", str(path))
    t2reg(home, "publish", str(path), "--name", name, *(["--metric", f"{task}:accuracy={score}"] if score else []))


def tiny_home(root: Path, experts: Sequence[tuple[str, str, int, float | None]],
              chat_template: str | None = None) -> Path:
    """A registry under ``root`` with a tiny random Llama (2048 positions, ``chat_template`` if given) as
    ``tiny``, decomposed, and noise experts ``(name, task, seed, score)`` published on it."""
    from transformers import AutoTokenizer

    from tests.helpers.tiny_tokenizer import save_model_with_tokenizer

    save_model_with_tokenizer(root / "tiny", "LlamaForCausalLM", seed=0, initializer_range=0.3, max_positions=2048)
    if chat_template:
        tokenizer = AutoTokenizer.from_pretrained(root / "tiny")
        tokenizer.chat_template = chat_template
        tokenizer.save_pretrained(root / "tiny")
    home = root / "home"
    t2reg(home, "init")
    t2reg(home, "model", "add", str(root / "tiny"), "--alias", "tiny")
    t2reg(home, "model", "decompose", "tiny")
    for name, task, seed, score in experts:
        publish_noise_expert(home, root, name, task, seed, score)
    return home
