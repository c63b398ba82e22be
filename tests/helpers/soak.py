"""A soak of a running `t2reg serve`: thousands of requests, valid and hostile, from concurrent clients, with
the server's resident memory sampled throughout.

Every valid request is greedy (or seeded) and must be answered with the text it gets when sent alone;
every hostile one must get its own error (or, for a client that stalls, a closed connection) and nothing
else. Used by tests/adaptation/serving/test_server.py (bounded, in `make test`) and bench/serve_soak.py.
"""

from __future__ import annotations

import concurrent.futures
import json
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

import httpx

QUESTIONS = ["What is 12 times 7?", "Write a function that reverses a list.", "Why do plants need light?",
             "Tell me a joke."]
PROMPTS = ["The answer is", "Solve the following"]
TOKENS = 8  # new tokens per valid request
STALL_WAIT = 60.0  # seconds a stalling client waits for the server to close before calling it a failure


@dataclass(frozen=True)
class Valid:
    """A request whose answer is known: the text it got alone."""

    path: str  # "/v1/chat/completions" or "/v1/completions"
    body: dict
    alone: str = ""  # filled in by measure_alone


@dataclass
class Report:
    """What a soak saw."""

    sent: dict[str, int] = field(default_factory=dict)  # per kind
    failures: list[str] = field(default_factory=list)
    rss: list[tuple[int, int]] = field(default_factory=list)  # (requests answered so far, server RSS bytes)
    warmup_rss: int = 0  # the server's RSS once the warm-up requests were answered
    seconds: float = 0.0

    @property
    def peak_after_warmup(self) -> int:
        return max([rss for _, rss in self.rss if rss], default=self.warmup_rss)

    @property
    def requests(self) -> int:
        return sum(self.sent.values())


def valid_requests(models: list[str]) -> list[Valid]:
    """Greedy chat and completion requests over ``models``, plus a seeded sample and a near-zero temperature."""
    chats = [Valid("/v1/chat/completions", {"model": m, "messages": [{"role": "user", "content": q}],
                                            "temperature": 0, "max_tokens": TOKENS})
             for m in models for q in QUESTIONS]
    completions = [Valid("/v1/completions", {"model": m, "prompt": p, "temperature": 0, "max_tokens": TOKENS})
                   for m in models for p in PROMPTS]
    seeded = [Valid("/v1/chat/completions", {"model": models[-1], "messages": [{"role": "user", "content": q}],
                                             "temperature": 1.0, "seed": 7, "max_tokens": TOKENS})
              for q in QUESTIONS[:2]]
    tiny_temperature = [Valid("/v1/chat/completions", {**chats[0].body, "temperature": 1e-300})]
    return chats + completions + seeded + tiny_temperature


def measure_alone(base: str, requests: list[Valid], headers: dict[str, str]) -> list[Valid]:
    """Each request's answer when it is the only one the server runs."""
    with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
        return [Valid(r.path, r.body, _text(client.post(r.path, json=r.body))) for r in requests]


def _text(response: httpx.Response) -> str:
    response.raise_for_status()
    choice = response.json()["choices"][0]
    return choice["message"]["content"] if "message" in choice else choice["text"]


def _streamed(client: httpx.Client, request: Valid) -> str:
    text = []
    with client.stream("POST", request.path, json={**request.body, "stream": True}) as response:
        if response.status_code != 200:
            return f"<status {response.status_code}>"
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                return f"<error {chunk['error']}>"
            for choice in chunk["choices"]:
                text.append(choice.get("delta", {}).get("content") or choice.get("text") or "")
    return "".join(text)


# -- hostile requests: each returns None when the server answered as it must, else what went wrong ---------


def _status(expected: int, response: httpx.Response) -> str | None:
    if response.status_code != expected:
        return f"status {response.status_code}, expected {expected}: {response.text[:200]}"
    error = response.json().get("error")
    if not error or not error.get("message"):
        return f"no OpenAI-style error body: {response.text[:200]}"
    return None


def _raw(path: str, text: str, expected: int) -> Callable[[httpx.Client, str], str | None]:
    def send(client: httpx.Client, model: str) -> str | None:
        content = text.replace("MODEL", model).encode()
        return _status(expected, client.post(path, content=content, headers={"content-type": "application/json"}))

    return send


def _json(path: str, body: dict, expected: int) -> Callable[[httpx.Client, str], str | None]:
    def send(client: httpx.Client, model: str) -> str | None:
        return _status(expected, client.post(path, json={"model": model, **body}))

    return send


def _hang_up(client: httpx.Client, model: str) -> str | None:
    """A stream the client leaves after its first chunk (the server must free the row)."""
    body = {"model": model, "messages": [{"role": "user", "content": QUESTIONS[0]}], "max_tokens": 16,
            "temperature": 0, "stream": True, "ignore_eos": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            return f"status {response.status_code}"
        next(response.iter_lines())
    return None


def _stall(base: str, send_headers: bool) -> str | None:
    """A client that sends its request a byte at a time (the headers, or after them the body): the server
    must close the connection (answering 408 when the headers were complete)."""
    url = urlsplit(base)
    start = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
    head = start + b"content-type: application/json\r\ncontent-length: 4000\r\n\r\n"
    # a header that never ends, or a body that never ends: both well-formed as far as they go
    drip = iter(b"{" + b" " * 100_000) if send_headers else iter(b"x-padding: " + b"a" * 100_000)
    received = b""
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.settimeout(0.25)
        sock.sendall(head if send_headers else start)
        deadline = time.monotonic() + STALL_WAIT
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                try:
                    sock.send(bytes([next(drip)]))
                except (BrokenPipeError, ConnectionResetError):
                    break
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        else:
            return f"the server kept a stalling connection open for {STALL_WAIT:g} s"
    if send_headers and not received.startswith(b"HTTP/1.1 408"):
        return f"a stalled body got {received[:60]!r}, expected 408"
    return None


def hostile_requests(base: str, max_body: int, max_tokens: int, max_prompt_tokens: int
                     ) -> dict[str, Callable[[httpx.Client, str], str | None]]:
    chat = "/v1/chat/completions"
    message = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    return {
        "seed-overflow": _json(chat, {**message, "seed": 2**70, "temperature": 1}, 400),
        "lone-surrogate": _raw(chat, '{"model": "MODEL", "messages": [{"role": "user", "content": "a\\ud800"}]}', 400),
        "surrogate-key": _raw(chat, '{"model": "MODEL", "messages": [{"role": "user", "content": "a"}], '
                                    '"\\udfff": 1}', 400),
        "nan-temperature": _raw(chat, '{"model": "MODEL", "messages": [{"role": "user", "content": "a"}], '
                                      '"temperature": NaN}', 400),
        "top-p-zero": _json(chat, {**message, "top_p": 0}, 400),
        "malformed-json": _raw(chat, '{"model": "MODEL", "messages": [', 400),
        "deep-json": _raw(chat, "[" * min(5000, max_body), 400),
        "too-big": _json(chat, {"messages": [{"role": "user", "content": "x" * max_body}]}, 413),
        "long-prompt": _json("/v1/completions", {"prompt": "x" * (max_prompt_tokens + 1), "max_tokens": 1}, 400),
        "max-tokens": _json(chat, {**message, "max_tokens": max_tokens + 1}, 400),
        "unknown-model": lambda client, _: _status(404, client.post(chat, json={**message, "model": "nobody:9"})),
        "n-choices": _json(chat, {**message, "n": 2}, 400),
        "hang-up": _hang_up,
        "stall-headers": lambda client, _: _stall(base, send_headers=False),
        "stall-body": lambda client, _: _stall(base, send_headers=True),
    }


# -- the soak -------------------------------------------------------------------------------------------------


def rss(pid: int) -> int:
    """Resident memory of process ``pid`` in bytes (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def soak(base: str, pid: int, valid: list[Valid], hostile: dict[str, Callable[[httpx.Client, str], str | None]],
         requests: int, clients: int, warmup: int, headers: dict[str, str] | None = None, seed: int = 0,
         stalls_every: int = 250) -> Report:
    """``requests`` requests from ``clients`` threads: 60 % valid (half of the chats streamed), 40 % hostile
    (a stalling client every ``stalls_every``); RSS sampled every 0.2 s, its warm-up figure taken when
    ``warmup`` requests have been answered."""
    rng = random.Random(seed)
    quick = [k for k in hostile if not k.startswith("stall")]
    stalls = [k for k in hostile if k.startswith("stall")]
    plan: list[tuple[str, int]] = []
    for i in range(requests):
        if stalls and i % stalls_every == stalls_every // 2:
            plan.append((stalls[(i // stalls_every) % len(stalls)], 0))
        elif rng.random() < 0.6:
            plan.append(("valid", rng.randrange(len(valid))))
        else:
            plan.append((rng.choice(quick), 0))
    models = sorted({v.body["model"] for v in valid})
    report, answered, lock = Report(), [0], threading.Lock()
    local, opened = threading.local(), []

    def one(step: tuple[int, tuple[str, int]]) -> None:
        n, (kind, index) = step
        if not hasattr(local, "client"):  # one keep-alive connection per client thread
            local.client = httpx.Client(base_url=base, headers=headers or {}, timeout=300)
            opened.append(local.client)
        try:
            if kind == "valid":
                request = valid[index]
                streamed = "messages" in request.body and n % 2 == 0
                text = _streamed(local.client, request) if streamed else _text(local.client.post(request.path,
                                                                                                  json=request.body))
                problem = None if text == request.alone else f"answered {text!r}, alone {request.alone!r}"
            else:
                problem = hostile[kind](local.client, models[n % len(models)])
        except Exception as exc:  # noqa: BLE001 - a soak records every failure and goes on
            problem = f"{type(exc).__name__}: {exc}"
        with lock:
            report.sent[kind] = report.sent.get(kind, 0) + 1
            answered[0] += 1
            if problem:
                report.failures.append(f"request {n} ({kind}{'' if kind != 'valid' else ' ' + str(index)}): "
                                       f"{problem}")

    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            done = answered[0]
            if done >= warmup:
                value = rss(pid)
                if not report.warmup_rss:
                    report.warmup_rss = value
                report.rss.append((done, value))

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.perf_counter()
    sampler.start()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, enumerate(plan)))
    stop.set()
    sampler.join()
    for client in opened:
        client.close()
    report.rss.append((answered[0], rss(pid)))
    report.warmup_rss = report.warmup_rss or report.rss[0][1]
    report.seconds = time.perf_counter() - started
    return report
