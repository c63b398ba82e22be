"""What ``GET /metrics`` reports, in Prometheus' text format (prometheus_client, one registry per server).

Per expert (``expert`` is the ref, or ``base``): requests by endpoint and
status, prompt and completion tokens, end-to-end latency and time to the first
token. For the scheduler: rows per forward pass (the batch sizes), rows running
and requests waiting, cancellations. For ``:auto``: which category and expert
the first pass picked. For the pool: experts served and reloads.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def expert_label(expert: str | None) -> str:
    return expert or "base"


class Metrics:
    """The server's counters, gauges and histograms."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("t2reg_requests", "Requests answered, by endpoint, expert and HTTP status.",
                                ["endpoint", "expert", "status"], registry=r)
        self.prompt_tokens = Counter("t2reg_prompt_tokens", "Prompt tokens processed.", ["expert"], registry=r)
        self.completion_tokens = Counter("t2reg_completion_tokens", "Tokens generated.", ["expert"], registry=r)
        self.latency = Histogram("t2reg_request_latency_seconds", "Request arrival to last token.", ["expert"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.first_token = Histogram("t2reg_time_to_first_token_seconds", "Request arrival to first streamed text.",
                                     ["expert"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_rows = Histogram("t2reg_batch_rows", "Rows in each forward pass of the scheduler.",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.cancelled = Counter("t2reg_cancelled_requests", "Requests whose client went away before the end.",
                                 registry=r)
        self.picks = Counter("t2reg_routes", "First-pass choices of :auto requests.", ["category", "expert"],
                              registry=r)
        self.reloads = Counter("t2reg_reloads", "Pool reloads (POST /v1/reload or SIGHUP), by outcome.", ["outcome"],
                               registry=r)
        self.running = Gauge("t2reg_running_requests", "Rows being decoded now.", registry=r)
        self.waiting = Gauge("t2reg_waiting_requests", "Requests waiting for a row.", registry=r)
        self.experts = Gauge("t2reg_pool_experts", "Experts served.", registry=r)

    def watch(self, running: Callable[[], float], waiting: Callable[[], float], experts: Callable[[], float]) -> None:
        """Gauges read at scrape time."""
        self.running.set_function(running)
        self.waiting.set_function(waiting)
        self.experts.set_function(experts)

    def request(self, endpoint: str, label: str, status: int) -> None:
        """Count one answered request (``label``: the expert's ref, ``base``, or ``-`` when refused before dispatch)."""
        self.requests.labels(endpoint, label, str(status)).inc()

    def tokens(self, expert: str | None, prompt: int, completion: int) -> None:
        self.prompt_tokens.labels(expert_label(expert)).inc(prompt)
        self.completion_tokens.labels(expert_label(expert)).inc(completion)

    def render(self) -> bytes:
        return generate_latest(self.registry)
