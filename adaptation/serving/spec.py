"""What defines one running server (``t2reg serve``): the model, its pool, limits, where it listens."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from t2reg.addresses import check_bind
from t2reg.errors import InvalidInputError
from t2reg.specs import JobSpec, positive
from t2reg.enums import Strategy

if TYPE_CHECKING:
    from t2reg.registry import Registry

SERVE_STRATEGIES = (Strategy.PROMPT.value, Strategy.CLASSIFIER.value)  # fixed:REF is a plain model name here


@dataclass(frozen=True)
class ServeSpec(JobSpec):
    """A server for ``model`` whose requests may name any expert of ``pool`` (empty: every expert of the model)."""

    kind: ClassVar[str] = "serve"

    model: str
    pool: tuple[str, ...] = ()
    backend: str = "hf"
    strategy: str = "prompt"  # how ``<model>:auto`` picks an expert (the first pass of dispatch)
    host: str = "127.0.0.1"
    port: int = 8000  # 0: any free port (the ready line on stdout says which)
    api_key: str | None = None
    max_batch: int = 32  # rows decoded together
    max_tokens: int = 1024  # the most a request may ask for; its default when it names none
    max_prompt_tokens: int = 4096  # the longest prompt a request may send (400 beyond)
    # KV-cache tokens all running rows may hold together, counted as rows x the longest row's prompt +
    # max_tokens (the cache is right-aligned); requests wait beyond it, one that alone exceeds it gets 503
    max_kv_tokens: int = 65536
    max_queue: int = 256  # requests waiting for a row beyond this are refused (503)
    max_body: int = 1 << 20  # bytes; larger request bodies are refused (413)
    max_connections: int = 512  # open connections (idle ones too); a request beyond them gets 503
    read_timeout: float = 30.0  # seconds a client may take to send its headers, and then its body (408)
    grace: float = 30.0  # seconds SIGTERM waits for in-flight requests
    device: str | None = None
    dtype: str = "float32"
    log_level: str = "warning"

    def validate(self) -> None:
        positive(self, "max_batch", "max_tokens", "max_prompt_tokens", "max_kv_tokens", "max_queue", "max_body",
                 "max_connections")
        if self.strategy not in SERVE_STRATEGIES:
            raise InvalidInputError(f"unknown {{strategy}} {self.strategy!r}; choose from {', '.join(SERVE_STRATEGIES)}",
                                    options=["strategy"])
        if not 0 <= self.port <= 65535:
            raise InvalidInputError("{port} must be between 0 and 65535", options=["port"])
        if not 0 < self.read_timeout < math.inf:
            raise InvalidInputError("{read_timeout} must be a number of seconds above 0", options=["read_timeout"])
        if self.grace < 0:
            raise InvalidInputError("{grace} must not be negative", options=["grace"])
        check_bind(self.host, self.api_key)  # an open address needs a key, as for `t2reg ui`

    def check(self, registry: Registry) -> None:
        from t2reg.adaptation.backends import check_backend

        self.validate()
        check_backend(self.backend)
        registry.get_model(self.model)
