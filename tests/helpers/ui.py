"""`t2reg ui` as a real subprocess, a registry filled for it, and headless Chromium to look at it."""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import t2reg
from t2reg import safetensors_io
from t2reg.adaptation.evaluation.questions import Questions
from t2reg.adaptation.tasks import Mode, get_task
from t2reg.architectures import matrix_specs
from t2reg.enums import Relation, Source
from t2reg.expert_file import Metric
from t2reg.question_results import dumps_results
from t2reg.registry import Registry
from t2reg.registry.derived import DerivedExpert
from t2reg.registry.entities import Lineage
from t2reg.registry.jobs import Claim
from t2reg.settings import Settings, load_settings
from tests.helpers.data import require_data
from tests.helpers.serving import t2reg as run_cli

READY = re.compile(r"t2reg: ui on (http://\S+)")
# The code this test process imports: a subprocess started there runs the same code (a checkout, or a worktree
# linked into a run folder), whatever the editable install points at.
CODE_ROOT = Path(t2reg.__file__).parent.parent
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
XSS = "<script>window.__xss = 1</script>"
# A base model small enough to decompose in a moment (random weights: the models page shows what is cached).
TINY_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
               "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
               "vocab_size": 64, "max_position_embeddings": 64}


class UiProcess:
    """``t2reg --home HOME ui --port 0 ARGS`` started and waited for (its ready line names the port)."""

    def __init__(self, home: Path, *args: str, log: Path, timeout: float = 60, options: tuple[str, ...] = ()):
        """``options``: global ones, before ``ui`` (``--db URL``)."""
        command = [sys.executable, "-m", "t2reg.cli", "--home", str(home), *options, "ui", "--port", "0", *args]
        self.log = log
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
                                     cwd=CODE_ROOT, env=os.environ.copy())
        self.url = self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> str:
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if selector.select(timeout=0.5):
                found = READY.search(self.proc.stdout.readline())
                if found:
                    return found.group(1)
        self.proc.kill()
        raise AssertionError(f"t2reg ui did not start (exit {self.proc.poll()}):\n{self.log.read_text()[-4000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def run_ui(home: Path, *args: str) -> subprocess.CompletedProcess:
    """``t2reg ui`` run to its end (for starts that must be refused)."""
    return subprocess.run([sys.executable, "-m", "t2reg.cli", "--home", str(home), "ui", "--port", "0", *args],
                          capture_output=True, text=True, cwd=CODE_ROOT, timeout=60)


@dataclass
class Filled:
    """A registry with one of everything the UI shows, and the running job's claim to add steps with."""

    home: Path
    native: str  # arc-easy on smollm2, scored under two protocols (one with per-question results)
    ordered: str  # its rank transfer to gemma3
    shuffled: str  # and the shuffled control
    mixture: str  # an adapted mixture of two natives, published by ``finished_job``
    xss: str  # an expert whose description, tag and card hold a script element
    protocol: str  # the measured protocol's id: arc-easy's test split, 4 questions
    base: str  # the base model alone (base:MODEL), with per-question results under ``protocol`` too
    questions: tuple[str, ...]  # the protocol's question ids, in the recorded order
    data: Path  # the evaluation data the protocol's questions come from
    tiny: str  # a base model with its MLP spectra cached
    finished_job: int
    running_job: int
    running_claim: Claim
    steps: int  # events the running job has
    database_url: str | None = None  # None: the SQLite file under home

    @property
    def options(self) -> tuple[str, ...]:
        """The global options that reach this registry, besides ``--home``."""
        return ("--db", self.database_url) if self.database_url else ()

    @property
    def cli_args(self) -> tuple[str, ...]:
        return ("--home", str(self.home), *self.options)

    def settings(self) -> Settings:
        return load_settings(home=self.home, database_url=self.database_url)


def search_event(iteration: int) -> dict:
    """One generation of a CEM search, as an adapt job records it."""
    best = 0.4 + 0.05 * iteration
    return {"iteration": iteration, "best": [best, -1.0], "generation_best": [best - 0.02, -1.1],
            "mean_score": best - 0.1, "std_score": 0.05, "best_alpha": [0.6 + 0.01 * iteration, 0.4]}


def fill_registry(root: Path, database_url: str | None = None) -> Filled:
    """Built-in models (shape tables, no weights) and one tiny model with its spectra: noise experts, a transfer
    and its shuffled control, an adapted mixture with lineage and the job that made it, scores under two
    protocols (per-question results for an expert and its base model under the measured one), a finished and a
    running job, and the script-in-every-text expert. With ``database_url`` (an empty database) the registry
    lives there, its blobs too."""
    data = require_data()
    home = root / "home"
    options = ("--db", database_url) if database_url else ()

    def cli(*args: str) -> None:
        run_cli(home, *options, *args)

    cli("init", *(("--blobs", "db") if database_url else ()))
    for name, task, seed, score in (("arc-smol", "arc-easy", 1, "0.55"), ("arc-smol-b", "arc-easy", 2, "0.5"),
                                    ("gsm-smol", "gsm8k", 3, "0.3")):
        path = root / f"{name}.safetensors"
        cli("new-expert", "--model", "smollm2-135m", "--task", task, "--noise", "0.2", "--seed", str(seed),
                "--out", str(path))
        cli("publish", str(path), "--name", name, "--metric", f"{task}:accuracy={score}", "--n", "200",
                "--description", f"# {name}\n\nA *noise* expert for `{task}`.\n\n* seed {seed}",
                "--tag", "reviewed=yes")
    cli("transfer", "arc-smol:1", "--to", "gemma3-270m")
    cli("transfer", "arc-smol:1", "--to", "gemma3-270m", "--baseline", "shuffled", "--seed", "7")
    path = root / "xss.safetensors"
    cli("new-expert", "--model", "smollm2-135m", "--task", "gsm8k", "--out", str(path))
    cli("publish", str(path), "--name", "xss", "--description", f"card {XSS}", "--tag", f"note={XSS}")
    with Registry(load_settings(home=home, database_url=database_url)) as registry:
        # the protocol `t2reg compare --task arc-easy --limit 4` measures under (its questions real, so the CLI
        # reads these results back); the answers are made up, the pattern is what the tests check
        questions = Questions.draw(get_task("arc-easy"), "test", 4, 0, data)
        protocol = questions.protocol(Mode.CLOZE)
        ids = tuple(ex.id for ex in questions.examples)
        registry.record("arc-smol:1", ["arc-easy:accuracy=0.75"], n=4, source="eval", protocol=protocol,
                        results=dumps_results(results_rows(ids, "AABA", -1.0)))
        registry.record_model_evaluation("smollm2-135m", [Metric("arc-easy", "accuracy", 0.5, "test", 4)],
                                         source="eval", protocol=protocol,
                                         results=dumps_results(results_rows(ids, "BBCA", -1.5)))
        tiny = _tiny_model(registry, root / "tiny")
        finished, mixture = _finished_job(registry)
        claim, running = registry.jobs.submit_claimed("adapt", {"task": "arc-easy", "model": "smollm2-135m",
                                                                "iterations": 10}, "test-worker")
        for i in range(3):
            registry.jobs.checkpoint(claim, {"components": ["arc-smol:1", "gsm-smol:1"]}, search_event(i))
        ordered = registry.list(where="name=arc-smol--to-gemma3-270m")[0].ref
        shuffled = registry.list(where="name=arc-smol--to-gemma3-270m--shuffled")[0].ref
        return Filled(home, "arc-smol:1", ordered, shuffled, mixture, "xss:1", protocol.id, "base:smollm2-135m",
                      ids, data, tiny, finished, running.id, claim, 3, database_url)


ANSWERS = "ABBA"  # the right answers of the four recorded questions


def results_rows(ids: tuple[str, ...], predictions: str, logprob: float) -> list[dict]:
    """Per-question results of a multiple-choice run (as a cloze evaluation records them)."""
    return [{"id": i, "prediction": p, "answer": a, "correct": p == a, "logprob": logprob,
             "option_logprobs": [logprob, logprob - 1.0]} for i, p, a in zip(ids, predictions, ANSWERS)]


def _tiny_model(registry: Registry, folder: Path) -> str:
    """A two-layer model with random weights, registered and its MLP decomposed as `t2reg model decompose` does."""
    from t2reg.adaptation.models import decompose_model

    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG))
    rng = np.random.default_rng(0)
    weights = {spec.name: rng.standard_normal((spec.out_features, spec.in_features)).astype(np.float32)
               for spec in matrix_specs(TINY_CONFIG, "all")}
    safetensors_io.write_file(folder / "model.safetensors", weights, {})
    info = registry.add_model(str(folder), name="tiny-llama", aliases=["tiny"])
    decompose_model(registry, "tiny", "mlp", device="cpu")
    return info.name


def _finished_job(registry: Registry) -> tuple[int, str]:
    claim, job = registry.jobs.submit_claimed("adapt", {"task": "arc-easy", "model": "smollm2-135m",
                                                        "iterations": 4}, "test-worker")
    for i in range(4):
        registry.jobs.checkpoint(claim, {"components": ["arc-smol:1", "gsm-smol:1"]}, search_event(i))
    a, b = registry.read_expert("arc-smol:1"), registry.read_expert("gsm-smol:1")
    vectors = {key: 0.7 * np.asarray(a.vectors[key]) + 0.3 * np.asarray(b.vectors[key]) for key in a.vectors}
    version = registry.publish_derived(DerivedExpert(
        vectors, "smollm2-135m", "arc-easy", Source.ADAPTED, "arc-adapted", job_id=job.id,
        lineage=(Lineage("arc-smol:1", Relation.MIXTURE_COMPONENT, 0.7),
                 Lineage("gsm-smol:1", Relation.MIXTURE_COMPONENT, 0.3))))
    registry.jobs.finish(claim, {"published": version.ref})
    return job.id, version.ref


def chromium():
    """Headless Debian Chromium through Selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
