"""Request bodies from hypothesis against a real `t2reg serve` subprocess: whatever JSON arrives (any shape, any
type in any field, huge and negative integers, NaN and infinities, lone surrogates in values and keys), the
answer is a completion or an OpenAI-style 4xx error, never a 500, and the server still answers a valid
request afterwards."""

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.serving import ServerProcess, tiny_home

MODELS = ["tiny", "coder:1", "coder", "tiny:auto", "nobody:3", ""]
ENDPOINTS = ["/v1/chat/completions", "/v1/completions"]
ROLES = ["user", "system", "developer", "assistant", "tool", "function"]
# A template that refuses conversations whose roles do not alternate user/assistant, as Gemma's does.
ALTERNATING = ("{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
               "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
               "{% endif %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}"
               "{% if add_generation_prompt %}assistant:{% endif %}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    home = tiny_home(root, [("coder", "mbpp", 3, 0.4)], chat_template=ALTERNATING)
    proc = ServerProcess(home, "--model", "tiny", "--max-tokens", "4", "--max-prompt-tokens", "64",
                         "--max-batch", "4", "--read-timeout", "5", log=root / "server.log")
    yield proc
    assert proc.stop() == 0


# Text: mostly what a client writes, sometimes anything Unicode holds, lone surrogates included.
plain = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=12)
texts = st.one_of(plain, st.text(st.characters(exclude_categories=()), max_size=12))
numbers = st.one_of(st.integers(-5, 40), st.integers(-(2**80), 2**80), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 1e-300, 5e-324, 1e308]))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                        max_leaves=8)
parts = st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]) | texts},
                                       optional={"text": texts | anything}), max_size=2)
messages = st.lists(st.fixed_dictionaries({"role": st.sampled_from(ROLES) | anything},
                                          optional={"content": texts | parts | anything, "name": texts}), max_size=3)
# What each field may be set to: mostly its own type, edges included, sometimes any JSON at all.
FIELDS = {
    "model": st.sampled_from(MODELS) | texts,
    "messages": messages,
    "prompt": texts | st.lists(texts, max_size=5),
    "max_tokens": st.integers(-1, 6) | numbers,
    "max_completion_tokens": st.integers(-1, 6) | numbers,
    "temperature": st.floats(0, 2) | numbers,
    "top_p": st.floats(0, 1) | numbers,
    "seed": st.integers(-(2**64), 2**64) | numbers,
    "stop": texts | st.lists(texts, max_size=5),
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}),
    "n": st.integers(0, 3) | numbers,
    "logprobs": scalars,
    "echo": st.booleans(),
    "suffix": texts,
    "best_of": st.integers(0, 3) | numbers,
    "user": texts,
    "ignore_eos": st.booleans(),
    "tools": anything,
    "response_format": st.fixed_dictionaries({}, optional={"type": st.sampled_from(["text", "json_object"]) | texts}),
}
FIELDS = {name: value | anything for name, value in FIELDS.items()}
# A valid request of each endpoint, with up to three of its fields set to something else and maybe an unknown
# key; now and then no object at all.
valid = {
    "/v1/chat/completions": st.fixed_dictionaries({
        "model": st.sampled_from(MODELS[:4]),
        "messages": st.tuples(st.fixed_dictionaries({"role": st.just("user"), "content": plain})).map(list),
        "max_tokens": st.integers(1, 4), "temperature": st.sampled_from([0, 0.7])}),
    "/v1/completions": st.fixed_dictionaries({
        "model": st.sampled_from(MODELS[:4]), "prompt": plain | st.lists(plain, min_size=1, max_size=3),
        "max_tokens": st.integers(1, 4), "temperature": st.sampled_from([0, 0.7])}),
}
changes = st.lists(st.sampled_from(sorted(FIELDS)), unique=True, max_size=3).flatmap(
    lambda names: st.fixed_dictionaries({name: FIELDS[name] for name in names}))
unknown = st.dictionaries(texts, anything, max_size=1)


def bodies(endpoint: str):
    changed = st.builds(lambda body, changed, extra: {**extra, **body, **changed}, valid[endpoint], changes, unknown)
    return st.one_of(changed, changed, changed, anything)


@settings(max_examples=400, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(endpoint=st.sampled_from(ENDPOINTS), data=st.data())
def test_no_request_body_gets_a_500(server, endpoint, data):
    body = data.draw(bodies(endpoint))
    content = json.dumps(body)  # NaN and Infinity as Python writes them; lone surrogates as \ud800 escapes
    with httpx.stream("POST", server.root + endpoint, content=content, timeout=120,
                      headers={"content-type": "application/json"}) as response:
        raw = response.read().decode()
    assert response.status_code in (200, 400, 404), (response.status_code, raw[:500])
    if response.status_code != 200:
        error = json.loads(raw)["error"]
        assert isinstance(error["message"], str) and error["message"] and error["type"] == "invalid_request_error"
    elif response.headers["content-type"].startswith("text/event-stream"):
        events = [line[6:] for line in raw.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]" and not any("error" in json.loads(e) for e in events[:-1]), raw[:500]
    else:
        assert json.loads(raw)["choices"], raw[:500]


def test_a_conversation_the_chat_template_refuses_is_a_400(server):
    refused = httpx.post(server.base_url + "/chat/completions", timeout=120, json={
        "model": "coder:1", "messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "hi"}]})
    assert refused.status_code == 400 and "roles must alternate" in refused.json()["error"]["message"]
    assert refused.json()["error"]["param"] == "messages"


def test_the_server_still_answers_after_the_fuzzing(server):
    answer = httpx.post(server.base_url + "/chat/completions", timeout=120,
                        json={"model": "coder:1", "messages": [{"role": "user", "content": "hi"}], "temperature": 0})
    assert answer.status_code == 200 and answer.json()["choices"][0]["finish_reason"] in ("stop", "length")
    assert httpx.get(server.root + "/health").json()["status"] == "ok"
