"""The OpenAI wire format: request bodies (validated by pydantic), responses, stream chunks, error bodies.

Fields the server cannot honour are refused rather than ignored (``n`` above 1,
``logprobs``, tools, images): an application that asks for them should know.
Unknown fields are ignored, as OpenAI-compatible servers do, but every string
in a body, known field or not, must be text that UTF-8 can carry (JSON's
``\\ud800`` escapes decode to lone surrogates, which no tokenizer takes).
Every response says what answered it: ``model`` is the expert's ref (or the
base model) and a ``t2reg`` object carries the expert and, for
``<model>:auto``, the category the first pass chose.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_STOP = 4
SEED_RANGE = (-(2**63), 2**63 - 1)  # what torch.Generator.manual_seed (and vLLM) take: a signed 64-bit integer


class ApiError(Exception):
    """An error the client gets as an OpenAI-style body with this HTTP status."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.kind, self.param, self.code)


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    max_tokens: int | None = Field(None, ge=1)
    # OpenAI's default: sampled; 0 is greedy, and so is anything below decoding.MIN_TEMPERATURE (1e-5)
    temperature: float = Field(1.0, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float = Field(1.0, gt=0.0, le=1.0, allow_inf_nan=False)
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    stop: str | list[str] | None = Field(None, validate_default=True)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1)
    logprobs: Any = None
    user: str | None = None
    ignore_eos: bool = False  # vLLM's extension: run to max_tokens (benchmarks, load tests)

    @model_validator(mode="before")
    @classmethod
    def _text(cls, data: Any) -> Any:
        field = unencodable(data)
        if field is not None:
            raise ValueError(f"{field or 'a field name'} holds a string that is not valid Unicode text (a lone "
                             f"surrogate such as \\ud800)")
        return data

    @field_validator("stop")
    @classmethod
    def _stops(cls, value):
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences")
        if any(s == "" for s in stops):
            raise ValueError("stop sequences must not be empty")
        return stops

    def unsupported(self) -> str | None:
        """The first field set to something this server does not do."""
        if self.n != 1:
            return "n"
        if self.logprobs not in (None, False):
            return "logprobs"
        return None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def unencodable(data: Any) -> str | None:
    """The top-level field of a decoded JSON body that holds a string (or key) UTF-8 cannot encode ('' for a
    key at the top), or None when every string is fine. Walked without recursion: nesting depth is the
    client's to choose."""
    fields = list(data.items()) if isinstance(data, dict) else [("", data)]
    for name, value in fields:
        if not _encodable(name):
            return ""
        pending = [value]
        while pending:
            item = pending.pop()
            if isinstance(item, str):
                if not _encodable(item):
                    return name or "the body"
            elif isinstance(item, dict):
                if not all(_encodable(k) for k in item if isinstance(k, str)):
                    return name or "the body"
                pending.extend(item.values())
            elif isinstance(item, list):
                pending.extend(item)
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        kinds = {p.type for p in self.content} - {"text"}
        if kinds:
            raise ApiError(400, f"only text content is supported, not {', '.join(sorted(kinds))}", param="messages")
        return "".join(p.text or "" for p in self.content)


class ChatRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[Any] | None = None
    response_format: dict[str, Any] | None = None

    def unsupported(self) -> str | None:
        if self.tools:
            return "tools"
        if self.response_format and self.response_format.get("type", "text") != "text":
            return "response_format"
        return super().unsupported()

    @property
    def limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def conversation(self) -> list[dict[str, str]]:
        """Role/content dicts for the chat template (``developer`` is OpenAI's newer name for ``system``)."""
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in self.messages]

    def question(self) -> str:
        """What the first pass of ``:auto`` classifies: the last user turn."""
        users = [m.text() for m in self.messages if m.role == "user"]
        return users[-1] if users else self.messages[-1].text()


class CompletionRequest(_Request):
    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for completions
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None

    def unsupported(self) -> str | None:
        if self.echo:
            return "echo"
        if self.suffix:
            return "suffix"
        if self.best_of not in (None, 1):
            return "best_of"
        return super().unsupported()

    @property
    def limit(self) -> int | None:
        return self.max_tokens

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


# -- responses ------------------------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chat_response(rid: str, model: str, text: str, reason: str, used: dict[str, int],
                  picked: dict[str, Any]) -> dict[str, Any]:
    return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                         "finish_reason": reason}],
            "usage": used, "t2reg": picked}


def chat_chunk(rid: str, model: str, created: int, delta: dict[str, Any], reason: str | None,
               picked: dict[str, Any]) -> dict[str, Any]:
    return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}], "t2reg": picked}


def completion_response(rid: str, model: str, choices: list[dict[str, Any]], used: dict[str, int],
                        picked: dict[str, Any]) -> dict[str, Any]:
    return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": choices, "usage": used, "t2reg": picked}


def completion_choice(index: int, text: str, reason: str | None, picked: dict[str, Any]) -> dict[str, Any]:
    return {"index": index, "text": text, "logprobs": None, "finish_reason": reason, "t2reg": picked}


def completion_chunk(rid: str, model: str, created: int, choice: dict[str, Any]) -> dict[str, Any]:
    return {"id": rid, "object": "text_completion", "created": created, "model": model, "choices": [choice]}


def usage_chunk(rid: str, model: str, created: int, kind: str, used: dict[str, int]) -> dict[str, Any]:
    return {"id": rid, "object": kind, "created": created, "model": model, "choices": [], "usage": used}
