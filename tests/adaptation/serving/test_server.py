"""`t2reg serve` as a real subprocess on a loopback port, spoken to with the `openai` package (and raw
HTTP or raw sockets where a client library would refuse to send the bad input): listing, both endpoints
streamed and not, answers equal to `t2reg run`, shared batches, `:auto` dispatch, every error, a hostile
request beside running ones, the limits on prompts, tokens and KV memory, clients that stall, disconnects,
reloads, SIGTERM with requests in flight, and a soak of thousands of mixed requests with the server's
memory sampled. Tiny real models, greedy unless said otherwise."""

import concurrent.futures
import json
import signal
import time

import httpx
import openai
import pytest

from t2reg.cli.main import _run
from t2reg.registry import Registry
from t2reg.settings import load_settings
from tests.adaptation.test_dispatch import QUESTIONS, _publish_dispatcher
from tests.helpers import soak
from tests.helpers.serving import ServerProcess, metric, publish_noise_expert, t2reg, tiny_home

KEY = "sk-test-key"
EXPERTS = (("math-weak", "gsm8k", 1, 0.2), ("math-strong", "gsm8k", 2, 0.6), ("coder", "mbpp", 3, 0.4),
           ("reasoner", "arc-easy", 4, 0.5))
GREEDY = {"temperature": 0, "max_tokens": 8}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A registry with a tiny model, four experts over three categories, and a dispatcher steered to 'math'."""
    root = tmp_path_factory.mktemp("serve")
    home = tiny_home(root, EXPERTS)
    registry = Registry(load_settings(home=home))
    _publish_dispatcher(registry, root, "math")
    registry.close()
    return home


@pytest.fixture(scope="module")
def server(home, tmp_path_factory):
    proc = ServerProcess(home, "--model", "tiny", "--strategy", "classifier", "--api-key", KEY, "--max-tokens", "1024",
                         "--max-body", "8192", "--max-batch", "8", "--log-level", "info",
                         log=tmp_path_factory.mktemp("log") / "server.log")
    yield proc
    assert proc.stop() == 0


@pytest.fixture
def client(server):
    return server.client(KEY)


def chat(client, model, question, **options):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                          **{**GREEDY, **options})


def get(server, path, **headers):
    return httpx.get(server.root + path, headers=headers, timeout=60)


def post(server, path, content=None, key=KEY, **options):
    headers = {"content-type": "application/json", **({"authorization": f"Bearer {key}"} if key else {})}
    return httpx.post(server.root + path, content=content, headers=headers, timeout=120, **options)


def test_models_list_the_base_model_the_pool_and_auto(client, server):
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "tiny" and ids[-1] == "tiny:auto"
    assert {"coder:1", "math-strong:1", "math-weak:1", "reasoner:1", "dispatcher:1"} <= set(ids)
    auto = client.models.retrieve("tiny:auto")
    assert auto.model_extra["t2reg"]["routes"] == {"code": "coder:1", "math": "math-strong:1",
                                                   "reasoning": "reasoner:1"}
    assert client.models.retrieve("coder").id == "coder:1"  # a bare name is its newest version
    health = get(server, "/health").json()
    assert health["status"] == "ok" and health["auto"] is True and health["experts"] >= 5


def test_an_experts_answer_equals_t2reg_run_with_that_expert(client, home, capsys):
    for ref in ("coder:1", "math-strong:1"):
        capsys.readouterr()
        t2reg(home, "run", "--model", "tiny", "--strategy", f"fixed:{ref}", "--max-new-tokens", "8", "--json",
              *QUESTIONS)
        expected = [a["answer"] for a in json.loads(capsys.readouterr().out)["answers"]]
        served = [chat(client, ref, q) for q in QUESTIONS]
        assert [r.choices[0].message.content for r in served] == expected
        assert {r.model for r in served} == {ref} and {r.model_extra["t2reg"]["expert"] for r in served} == {ref}
    base = chat(client, "tiny", QUESTIONS[0])
    assert base.model == "tiny" and base.model_extra["t2reg"]["expert"] is None
    assert base.choices[0].message.content != served[0].choices[0].message.content


def test_chat_streamed_and_not_say_the_same(client):
    for model in ("tiny", "reasoner:1"):
        whole = chat(client, model, QUESTIONS[2], max_tokens=12)
        chunks = list(chat(client, model, QUESTIONS[2], max_tokens=12, stream=True,
                           stream_options={"include_usage": True}))
        assert chunks[0].choices[0].delta.role == "assistant"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == whole.choices[0].message.content
        reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert reasons == [whole.choices[0].finish_reason]
        assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
        assert all(c.model == whole.model for c in chunks)


def test_completions_streamed_and_not_say_the_same(client):
    prompts = ["The answer is", "Solve the following"]
    whole = client.completions.create(model="math-weak:1", prompt=prompts, max_tokens=10, temperature=0)
    assert [c.index for c in whole.choices] == [0, 1] and whole.usage.completion_tokens <= 20
    streamed = {0: "", 1: ""}
    for chunk in client.completions.create(model="math-weak:1", prompt=prompts, max_tokens=10, temperature=0,
                                           stream=True):
        for choice in chunk.choices:
            streamed[choice.index] += choice.text
    assert [streamed[0], streamed[1]] == [c.text for c in whole.choices]
    single = client.completions.create(model="math-weak:1", prompt=prompts[0], max_tokens=10, temperature=0)
    assert single.choices[0].text == whole.choices[0].text  # alone or beside another prompt: the same answer
    assert single.choices[0].finish_reason in ("stop", "length")


def test_concurrent_requests_for_different_experts_share_batches_and_answer_as_alone(client, server):
    models = ["tiny", "coder:1", "math-strong:1", "reasoner:1"]
    work = [(m, q) for m in models for q in QUESTIONS]
    alone = [chat(client, m, q).choices[0].message.content for m, q in work]
    before = get(server, "/metrics").text
    with concurrent.futures.ThreadPoolExecutor(len(work)) as pool:
        together = list(pool.map(lambda mq: chat(client, *mq).choices[0].message.content, work))
    assert together == alone
    after = get(server, "/metrics").text
    passes = metric(after, "t2reg_batch_rows_count") - metric(before, "t2reg_batch_rows_count")
    rows = metric(after, "t2reg_batch_rows_sum") - metric(before, "t2reg_batch_rows_sum")
    assert rows / passes > 1.5  # many rows per forward pass, not one request at a time
    assert len(set(alone)) > len(QUESTIONS)  # the experts change the answers


def test_auto_routes_each_prompt_to_its_categorys_best_expert(client, server):
    routed = chat(client, "tiny:auto", QUESTIONS[0])
    assert routed.model == "math-strong:1"  # the dispatcher says math; the better of the two math experts
    assert routed.model_extra["t2reg"] == {"expert": "math-strong:1", "category": "math", "strategy": "classifier"}
    direct = chat(client, "math-strong:1", QUESTIONS[0])
    assert routed.choices[0].message.content == direct.choices[0].message.content
    raw = client.chat.completions.with_raw_response.create(
        model="tiny:auto", messages=[{"role": "user", "content": QUESTIONS[1]}], stream=True, **GREEDY)
    assert raw.headers["x-t2reg-expert"] == "math-strong:1" and raw.headers["x-t2reg-category"] == "math"
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse()) == \
        chat(client, "math-strong:1", QUESTIONS[1]).choices[0].message.content
    assert metric(get(server, "/metrics").text, "t2reg_routes_total", category="math", expert="math-strong:1") >= 2


def test_seeded_sampling_is_reproducible(client):
    runs = [chat(client, "coder:1", QUESTIONS[3], temperature=1.0, seed=5, max_tokens=12).choices[0].message.content
            for _ in range(2)]
    assert runs[0] == runs[1]


def test_bad_input_gets_openai_error_bodies_and_never_takes_the_server_down(client, server):
    def refused(status, call):
        with pytest.raises(openai.APIStatusError) as caught:
            call()
        assert caught.value.status_code == status, caught.value
        return caught.value.body

    body = refused(404, lambda: chat(client, "no-such-expert:3", "hi"))
    assert body["code"] == "model_not_found" and body["param"] == "model"
    body = refused(400, lambda: chat(client, "tiny", "hi", max_tokens=1025))
    assert body["param"] == "max_tokens" and "at most 1024" in body["message"]
    body = refused(400, lambda: chat(client, "tiny", "hi " * 1100, max_tokens=1000))  # the prompt alone is too long
    assert "the model's context holds 2048" in body["message"]
    body = refused(400, lambda: chat(client, "tiny", "hi " * 600, max_tokens=1000))  # prompt + max_tokens are
    assert "exceeds the model's context" in body["message"] and body["param"] == "max_tokens"
    body = refused(400, lambda: chat(client, "tiny", "hi", temperature=7))
    assert body["param"] == "temperature"
    refused(400, lambda: client.chat.completions.create(model="tiny", messages=[]))
    refused(400, lambda: client.completions.create(model="tiny", prompt="", max_tokens=4))
    body = refused(400, lambda: chat(client, "tiny", "hi", n=2))
    assert body["param"] == "n"
    refused(401, lambda: chat(server.client("wrong-key"), "tiny", "hi"))
    refused(401, lambda: server.client("wrong-key").models.list())
    # what clients would not send: raw HTTP
    malformed = post(server, "/v1/chat/completions", b'{"model": "tiny", "messages": [')
    assert malformed.status_code == 400 and malformed.json()["error"]["type"] == "invalid_request_error"
    assert post(server, "/v1/chat/completions", b"{}", key=None).status_code == 401  # the key is checked first
    huge = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x" * 10_000}]}).encode()
    too_big = post(server, "/v1/chat/completions", huge)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "request_too_large"
    chunked = post(server, "/v1/chat/completions", iter([huge[:4000], huge[4000:]]))  # no Content-Length
    assert chunked.status_code == 413
    assert post(server, "/v1/nowhere", b"{}").status_code == 404
    image = post(server, "/v1/chat/completions", json.dumps({"model": "tiny", "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}).encode())
    assert image.status_code == 400 and "only text" in image.json()["error"]["message"]
    assert get(server, "/health").json()["status"] == "ok"
    assert chat(client, "tiny", "hi").choices[0].finish_reason in ("stop", "length")
    text = get(server, "/metrics").text
    assert metric(text, "t2reg_requests_total", status="404") >= 1 and metric(text, "t2reg_requests_total",
                                                                               status="413") >= 1


def test_a_hostile_request_beside_running_ones_fails_alone_and_is_answered(client, server):
    work = [("coder:1", QUESTIONS[0]), ("tiny", QUESTIONS[1]), ("reasoner:1", QUESTIONS[2])]
    long = {"max_tokens": 300, "extra_body": {"ignore_eos": True}}  # hundreds of steps of decoding
    alone = [chat(client, m, q, **long).choices[0].message.content for m, q in work]
    greedy = chat(client, "coder:1", QUESTIONS[3]).choices[0].message.content
    message = {"messages": [{"role": "user", "content": QUESTIONS[3]}], "max_tokens": 8}
    with concurrent.futures.ThreadPoolExecutor(len(work)) as pool:
        running = [pool.submit(chat, client, m, q, **long) for m, q in work]
        deadline = time.monotonic() + 60
        while get(server, "/health").json()["running"] < len(work):
            assert time.monotonic() < deadline, "the long requests never ran together"
            time.sleep(0.01)
        overflow = post(server, "/v1/chat/completions", json.dumps(
            {"model": "coder:1", **message, "temperature": 1, "seed": 2**70}).encode())
        tiny_temperature = post(server, "/v1/chat/completions", json.dumps(
            {"model": "coder:1", **message, "temperature": 1e-300}).encode())
        surrogate = post(server, "/v1/chat/completions",
                         b'{"model": "coder:1", "messages": [{"role": "user", "content": "hi \\ud800"}]}')
        nan = post(server, "/v1/chat/completions", b'{"model": "coder:1", "messages": [{"role": "user", '
                                                   b'"content": "hi"}], "top_p": NaN}')
        assert get(server, "/health").json()["running"] >= len(work)  # the hostile ones came mid-decode
        answers = [f.result(timeout=300) for f in running]
    assert overflow.status_code == 400 and overflow.json()["error"]["param"] == "seed"
    assert tiny_temperature.status_code == 200  # below 1e-5 a temperature is greedy
    assert tiny_temperature.json()["choices"][0]["message"]["content"] == greedy
    assert surrogate.status_code == 400 and "not valid Unicode" in surrogate.json()["error"]["message"]
    assert nan.status_code == 400 and nan.json()["error"]["param"] == "top_p"
    assert [a.choices[0].message.content for a in answers] == alone
    assert all(a.usage.completion_tokens == 300 for a in answers)


@pytest.fixture(scope="module")
def bounded(home, tmp_path_factory):
    """A server with small limits: prompts of 48 tokens, 32 new tokens, 64 tokens of KV cache, 2 s to send a
    request."""
    proc = ServerProcess(home, "--model", "tiny", "--max-tokens", "32", "--max-prompt-tokens", "48",
                         "--max-kv-tokens", "64", "--read-timeout", "2", "--max-batch", "8",
                         log=tmp_path_factory.mktemp("log") / "bounded.log")
    yield proc
    assert proc.stop() == 0


def complete(server, prompt, **options):
    return httpx.post(server.base_url + "/completions", json={"model": "coder:1", "prompt": prompt, "temperature": 0,
                                                             **options}, timeout=120)


def test_the_limits_on_prompts_tokens_and_kv_memory(bounded):
    refused = complete(bounded, "x" * 49)  # one character a token with this tokenizer
    assert refused.status_code == 400 and "at most 48" in refused.json()["error"]["message"]
    assert refused.json()["error"]["param"] == "prompt"
    assert complete(bounded, "x" * 48, max_tokens=33).json()["error"]["param"] == "max_tokens"
    never = complete(bounded, "x" * 40, max_tokens=32)  # 72 tokens of KV alone: can never run
    assert never.status_code == 503 and never.json()["error"]["code"] == "kv_budget_exceeded"
    fitted = complete(bounded, "x" * 40, max_tokens=None, ignore_eos=True)  # no limit named: what fits
    assert fitted.status_code == 200 and fitted.json()["usage"]["completion_tokens"] == 64 - 40
    # 14 + 16 tokens each: two rows fit in 64, a third waits for one of them to finish
    alone = complete(bounded, "x" * 14, max_tokens=16, ignore_eos=True).json()["choices"][0]["text"]
    before = httpx.get(bounded.root + "/metrics").text
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda _: complete(bounded, "x" * 14, max_tokens=16, ignore_eos=True), range(6)))
    after = httpx.get(bounded.root + "/metrics").text
    assert [r.json()["choices"][0]["text"] for r in together] == [alone] * 6
    passes = metric(after, "t2reg_batch_rows_count") - metric(before, "t2reg_batch_rows_count")
    at_most_two = (metric(after, "t2reg_batch_rows_bucket", le="2.0")
                   - metric(before, "t2reg_batch_rows_bucket", le="2.0"))
    rows = metric(after, "t2reg_batch_rows_sum") - metric(before, "t2reg_batch_rows_sum")
    assert at_most_two == passes and rows > passes  # never more than two rows, often two


def test_clients_that_stall_are_cut_off_and_the_server_serves_others(bounded):
    """Six clients sending a byte at a time (three stuck in their headers, three in their bodies) and one
    that sends nothing: each connection is closed (a stalled body with 408), and meanwhile others are served."""
    with concurrent.futures.ThreadPoolExecutor(7) as pool:
        stalled = [pool.submit(soak._stall, bounded.base_url, send_headers=i % 2 == 1) for i in range(6)]
        silent = pool.submit(_silent_client, bounded.base_url)
        while not any(f.done() for f in stalled):
            served = complete(bounded, "The answer is", max_tokens=4)
            assert served.status_code == 200
        assert [f.result() for f in stalled] == [None] * 6
        assert silent.result() is None


def test_connections_past_the_limit_get_503_until_others_close(home, tmp_path):
    import socket
    from urllib.parse import urlsplit

    proc = ServerProcess(home, "--model", "tiny", "--max-connections", "3", log=tmp_path / "server.log")
    try:
        url = urlsplit(proc.root)
        idle = [socket.create_connection((url.hostname, url.port)) for _ in range(3)]
        refused = httpx.get(proc.root + "/health", timeout=60)  # the fourth connection
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "overloaded"
        for sock in idle:
            sock.close()
        deadline = time.monotonic() + 60
        while httpx.get(proc.root + "/health", timeout=60).status_code != 200:  # the server sees them go
            assert time.monotonic() < deadline, "closed connections still counted"
            time.sleep(0.1)
    finally:
        assert proc.stop() == 0


def _silent_client(base_url):
    """A connection that never sends a byte: closed by the server."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(base_url)
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.settimeout(soak.STALL_WAIT)
        try:
            return None if sock.recv(1) == b"" else "the server sent something to a silent client"
        except ConnectionResetError:
            return None
        except TimeoutError:
            return "the server kept a silent connection open"


def test_a_soak_of_mixed_requests_answers_every_valid_one_and_memory_stays_flat(home, tmp_path):
    """2,000 requests from 16 clients, 60 % greedy or seeded (each must be answered with the text it gets
    alone), 40 % hostile (each must get its own error: overflowing seeds, lone surrogates, NaN, malformed and
    deep JSON, bodies and prompts over the limits, unknown models, hang-ups, clients that stall). The server's
    RSS after the first 300 requests is the warm-up figure; it may not grow past it by more than a quarter."""
    proc = ServerProcess(home, "--model", "tiny", "--max-tokens", "16", "--max-prompt-tokens", "64",
                         "--max-kv-tokens", "256", "--max-batch", "8", "--max-queue", "64", "--max-body", "8192",
                         "--read-timeout", "2", log=tmp_path / "soak.log")
    try:
        valid = soak.measure_alone(proc.root, soak.valid_requests(["tiny", "coder:1", "math-strong:1", "reasoner:1"]),
                                   {})
        hostile = soak.hostile_requests(proc.root, max_body=8192, max_tokens=16, max_prompt_tokens=64)
        report = soak.soak(proc.root, proc.proc.pid, valid, hostile, requests=2000, clients=16, warmup=300)
        print(f"soak: {report.requests} requests in {report.seconds:.0f} s, RSS after warm-up "
              f"{report.warmup_rss / 2**20:.0f} MiB, peak after {report.peak_after_warmup / 2**20:.0f} MiB")
        assert not report.failures, "\n".join(report.failures[:20])
        assert set(report.sent) == {"valid", *hostile} and report.sent["valid"] > 1000
        assert report.peak_after_warmup <= 1.25 * report.warmup_rss
        health = httpx.get(proc.root + "/health").json()
        assert health["status"] == "ok" and health["waiting"] == 0
    finally:
        assert proc.stop() == 0


def test_a_client_that_disconnects_mid_stream_frees_its_slot(server, client):
    # ignore_eos: the answer runs to its 1000 tokens, seconds of work that the hang-up must cut short
    assert chat(client, "coder:1", "hi", max_tokens=1000, extra_body={"ignore_eos": True}).usage.completion_tokens \
        == 1000
    cancelled = metric(get(server, "/metrics").text, "t2reg_cancelled_requests_total")
    body = {"model": "coder:1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1000, "stream": True,
            "temperature": 0, "ignore_eos": True}
    with httpx.stream("POST", server.base_url + "/chat/completions", json=body, timeout=60,
                      headers={"authorization": f"Bearer {KEY}"}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                break  # decoding has begun: hang up
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = get(server, "/metrics").text
        if metric(text, "t2reg_cancelled_requests_total") > cancelled and metric(text, "t2reg_running_requests") == 0:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the disconnected stream was not cancelled")
    assert get(server, "/health").json()["running"] == 0


def test_reload_and_sighup_serve_a_newly_published_expert(server, client, home, tmp_path):
    publish_noise_expert(home, tmp_path, "late", "mbpp", 9)
    assert "late:1" not in [m.id for m in client.models.list()]
    reloaded = post(server, "/v1/reload").json()
    assert reloaded["added"] == ["late:1"] and "late:1" in reloaded["models"]
    assert chat(client, "late:1", QUESTIONS[0]).model == "late:1"
    assert post(server, "/v1/reload", key=None).status_code == 401
    publish_noise_expert(home, tmp_path, "later", "mbpp", 10)
    server.send(signal.SIGHUP)
    deadline = time.monotonic() + 60
    while "later:1" not in [m.id for m in client.models.list()]:
        assert time.monotonic() < deadline, "SIGHUP did not reload the pool"
        time.sleep(0.2)
    assert chat(client, "later:1", QUESTIONS[0]).choices[0].message.content
    assert metric(get(server, "/metrics").text, "t2reg_reloads_total", outcome="ok") >= 2


def test_sigterm_lets_requests_in_flight_finish_and_exits_0(home, tmp_path):
    proc = ServerProcess(home, "--model", "tiny", "--max-batch", "1", "--log-level", "info", log=tmp_path / "log")
    client = proc.client()
    try:
        work = [("coder:1" if i % 2 else "tiny", QUESTIONS[i % 4]) for i in range(8)] + [("tiny:auto", QUESTIONS[0])]
        with concurrent.futures.ThreadPoolExecutor(len(work)) as pool:
            futures = [pool.submit(chat, client, m, q, max_tokens=100, extra_body={"ignore_eos": True})
                       for m, q in work]
            deadline = time.monotonic() + 60
            while metric(httpx.get(proc.root + "/metrics").text, "t2reg_waiting_requests") < 3:
                assert time.monotonic() < deadline, "the requests never queued up"
                time.sleep(0.01)
            proc.send(signal.SIGTERM)
            answers = [f.result(timeout=300) for f in futures]
        assert all(a.choices[0].finish_reason == "length" and a.usage.completion_tokens == 100 for a in answers)
        auto = answers[-1].model_extra["t2reg"]
        assert auto["strategy"] == "prompt" and auto["category"] in ("code", "math", "reasoning", "other")
        assert proc.proc.wait(120) == 0
        assert "Waiting for connections to close" in proc.log.read_text()  # they really were in flight
    finally:
        proc.stop(signal.SIGKILL)


def test_the_command_refuses_bad_settings_before_loading_anything(home, capsys):
    import socket

    def serve(*args):
        capsys.readouterr()
        code = _run(["--home", str(home), "serve", *args], debug=False)
        return code, capsys.readouterr().err

    code, err = serve("--model", "tiny", "--max-batch", "0")
    assert code == 4 and "--max-batch must be at least 1" in err
    code, err = serve("--model", "no-such-model", "--port", "0")
    assert code == 3 and "no-such-model" in err
    code, err = serve("--model", "tiny", "--pool", "task=no-such-task", "--port", "0")
    assert code == 3 and "matched no live expert" in err
    code, err = serve("--model", "tiny", "--host", "0.0.0.0", "--port", "0")  # open to the network, no key
    assert code == 6 and err.count("\n") == 1
    assert err.startswith("t2reg: error: --host '0.0.0.0' is reachable from other machines: give an --api-key")
    code, err = serve("--model", "tiny", "--api-key", " ", "--port", "0")
    assert code == 4 and "--api-key must not be empty" in err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = serve("--model", "tiny", "--port", str(port))
    assert code == 4 and f"cannot listen on 127.0.0.1:{port}" in err
