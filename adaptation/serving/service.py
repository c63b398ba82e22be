"""Answering one request: resolve its model, check its limits, dispatch ``:auto``, run it, shape the answer.

The HTTP layer (:mod:`app`) hands bodies to a :class:`Service`; the service
turns them into scheduler :class:`~t2reg.adaptation.serving.scheduler.Completion`\\ s whose
events come back into the event loop through an ``asyncio.Queue``, and builds
the OpenAI response, or the stream of server-sent events, from them. A client
that goes away (mid-stream, or while waiting for a whole answer) has its completions
cancelled, which frees their rows at the scheduler's next step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Sequence

from jinja2 import TemplateError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from t2reg.adaptation import dispatch
from t2reg.adaptation.serving import wire
from t2reg.adaptation.serving.catalog import Catalog, Target, load_catalog
from t2reg.adaptation.serving.scheduler import (
    BusyError,
    Delta,
    Scheduler,
    Event,
    Failed,
    Finished,
    Completion,
    OverBudgetError,
    StoppedError,
)
from t2reg.adaptation.serving.metrics import Metrics
from t2reg.adaptation.serving.wire import ApiError
from t2reg.adaptation.serving.spec import ServeSpec
from t2reg.errors import InvalidInputError, NotFoundError, T2RegError
from t2reg.registry import Registry
from t2reg.enums import Strategy

log = logging.getLogger("t2reg.serve")
FIRST_PASS_TOKENS = 32  # what the prompt strategy's dispatch answer may take (as in `t2reg run`)
DISCONNECT_POLL = 0.25  # seconds between checks that a client waiting for a whole answer is still there


@dataclass(frozen=True)
class Pick:
    """Which expert answers one prompt, and for ``:auto`` the category the first pass chose."""

    expert: str | None
    category: str | None = None


class _Gone(Exception):
    """The client disconnected while its answer was being made."""


class Service:
    """The server's state (catalog, scheduler, metrics) and the work behind each endpoint."""

    def __init__(self, registry: Registry, spec: ServeSpec, scheduler: Scheduler, catalog: Catalog,
                 metrics: Metrics) -> None:
        self.registry = registry
        self.spec = spec
        self.scheduler = scheduler
        self.catalog = catalog
        self.metrics = metrics
        self._reload_lock = asyncio.Lock()
        metrics.watch(lambda: scheduler.running, lambda: scheduler.waiting, lambda: len(self.catalog.experts))

    @property
    def context_length(self) -> int | None:
        """Tokens one request may hold, prompt and completion (the backend's, through the scheduler)."""
        return self.scheduler.context_length

    # -- models and reload ----------------------------------------------------------------------------------

    def resolve(self, model: str) -> Target:
        try:
            return self.catalog.resolve(model)
        except NotFoundError as exc:
            raise ApiError(404, str(exc), param="model", code="model_not_found") from None

    async def reload(self) -> dict[str, Any]:
        """Read the pool from the registry again and serve it from the scheduler's next step."""
        async with self._reload_lock:
            before = set(self.catalog.ids())
            try:
                catalog, experts = await asyncio.to_thread(load_catalog, self.registry, self.spec.model,
                                                           self.spec.pool, self.spec.strategy)
                await asyncio.wrap_future(self.scheduler.reload(experts))
            except T2RegError as exc:
                self.metrics.reloads.labels("failed").inc()
                raise ApiError(400 if isinstance(exc, InvalidInputError) else 500, f"reload failed: {exc}") from None
            self.catalog = catalog
            self.metrics.reloads.labels("ok").inc()
            after = set(catalog.ids())
            log.info("reloaded: %d models (%d added, %d removed)", len(after), len(after - before), len(before - after))
            return {"object": "reload", "models": catalog.ids(), "added": sorted(after - before),
                    "removed": sorted(before - after)}

    # -- completions ----------------------------------------------------------------------------------------

    async def chat(self, body: wire.ChatRequest, request: Request) -> Response:
        target = self.resolve(body.model)
        try:
            prompt = self.scheduler.render_chat(body.conversation())
        except TemplateError as exc:  # the template's own refusal, e.g. roles that do not alternate
            raise ApiError(400, f"the model's chat template refuses these messages: {exc}", param="messages") from None
        return await self._answer("chat", body, target, [prompt], [body.question()], "messages", request)

    async def completion(self, body: wire.CompletionRequest, request: Request) -> Response:
        target = self.resolve(body.model)
        prompts = body.prompts()
        if not prompts or len(prompts) > self.spec.max_batch:
            raise ApiError(400, f"prompt must be a string or a list of 1 to {self.spec.max_batch} strings",
                           param="prompt")
        return await self._answer("completions", body, target, prompts, prompts, "prompt", request)

    async def _answer(self, endpoint: str, body, target: Target, prompts: list[str], questions: list[str],
                      prompt_param: str, request: Request) -> Response:
        started = time.perf_counter()
        unsupported = body.unsupported()
        if unsupported:
            raise ApiError(400, f"{unsupported} is not supported by this server", param=unsupported)
        encoded = [self.scheduler.encode(p) for p in prompts]
        if not all(encoded):
            raise ApiError(400, "a prompt is empty (no tokens to continue from)", param=prompt_param)
        limits = [self._max_tokens(body, len(ids), prompt_param) for ids in encoded]
        picks = await self._pick(target, questions)
        queue: asyncio.Queue = asyncio.Queue()
        sink = _sink(asyncio.get_running_loop(), queue)
        completions = [Completion(ids, pick.expert, limit, sink(i), prompt=prompt, temperature=body.temperature,
                                  top_p=body.top_p, seed=body.seed, stop=tuple(body.stop), stream=body.stream,
                                  ignore_eos=body.ignore_eos)
                       for i, (ids, pick, limit, prompt) in enumerate(zip(encoded, picks, limits, prompts))]
        self._submit(completions)
        answer = _Answer(endpoint, wire.new_id("chatcmpl" if endpoint == "chat" else "cmpl"), self.catalog.model,
                         target, picks, self._auto_strategy(target))
        headers = answer.headers()
        if body.stream:
            return StreamingResponse(self._stream(answer, body, completions, queue, started),
                                     media_type="text/event-stream", headers={**headers, "cache-control": "no-cache"})
        try:
            finished = await self._collect(completions, queue, request, answer, started)
        except _Gone:
            return Response(status_code=499)  # nobody reads it; nginx's code for "client closed request"
        return JSONResponse(answer.response(finished), headers=headers)

    def _auto_strategy(self, target: Target):
        """The dispatch strategy that picked the experts of an ``:auto`` request (None for any other)."""
        plan = self.catalog.dispatch_plan
        return plan.strategy if target.auto and plan else None

    def _max_tokens(self, body, prompt_tokens: int, prompt_param: str) -> int:
        """The request's token budget: what it asked for (at most the server's limit), else all there is room for
        (in the context and in the server's KV budget; the scheduler refuses a request that can never fit)."""
        param = "max_completion_tokens" if getattr(body, "max_completion_tokens", None) is not None else "max_tokens"
        asked = body.limit
        if prompt_tokens > self.spec.max_prompt_tokens:
            raise ApiError(400, f"the prompt has {prompt_tokens} tokens; this server allows at most "
                                f"{self.spec.max_prompt_tokens}", param=prompt_param)
        if asked is not None and asked > self.spec.max_tokens:
            raise ApiError(400, f"{param} is {asked}; this server allows at most {self.spec.max_tokens}", param=param)
        room = None if self.context_length is None else self.context_length - prompt_tokens
        if room is not None and room < 1:
            raise ApiError(400, f"the prompt has {prompt_tokens} tokens; the model's context holds "
                                f"{self.context_length}", param=prompt_param)
        if asked is None:
            fits = max(1, self.spec.max_kv_tokens - prompt_tokens)
            return min(self.spec.max_tokens, fits, *([room] if room is not None else []))
        if room is not None and asked > room:
            raise ApiError(400, f"the prompt ({prompt_tokens} tokens) plus {param} ({asked}) exceeds the model's "
                                f"context of {self.context_length} tokens", param=param)
        return asked

    def _submit(self, completions: Sequence[Completion]) -> None:
        for n, completion in enumerate(completions):
            try:
                self.scheduler.submit(completion)
            except (BusyError, StoppedError, OverBudgetError, InvalidInputError) as exc:
                for earlier in completions[:n]:
                    self.scheduler.cancel(earlier)
                if isinstance(exc, InvalidInputError):  # an expert a reload has just dropped
                    raise ApiError(404, f"{completion.expert} is no longer served", param="model",
                                   code="model_not_found") from None
                code = "kv_budget_exceeded" if isinstance(exc, OverBudgetError) else "overloaded"
                raise ApiError(503, str(exc), kind="server_error", code=code) from None

    # -- dispatch for :auto -------------------------------------------------------------------------------

    async def _pick(self, target: Target, questions: list[str]) -> list[Pick]:
        if not target.auto:
            return [Pick(target.expert)] * len(questions)
        plan = self.catalog.dispatch_plan
        if plan.strategy == Strategy.CLASSIFIER:
            requests = dispatch.classifier_requests(questions)
            scores = await asyncio.wrap_future(self.scheduler.score([(r.context, r.continuation) for r in requests],
                                                                 plan.dispatcher.ref))
            categories = dispatch.categories_from_scores(plan, scores)
        else:
            categories = await asyncio.gather(*(self._ask_category(q, plan.categories) for q in questions))
        picks = []
        for category in categories:
            version = plan.experts.get(category)
            picks.append(Pick(version.ref if version else None, category))
            self.metrics.picks.labels(category, version.ref if version else "base").inc()
        return picks

    async def _ask_category(self, question: str, names: Sequence[str]) -> str:
        """The prompt strategy's first pass for one question, decoded in the shared batch on the base weights."""
        prompt = self.scheduler.render(dispatch.dispatch_question(question, names))
        ids = self.scheduler.encode(prompt)
        queue: asyncio.Queue = asyncio.Queue()
        completion = Completion(ids, None, FIRST_PASS_TOKENS, _sink(asyncio.get_running_loop(), queue)(0), prompt=prompt)
        self._submit([completion])
        try:
            while True:
                _, event = await queue.get()
                if isinstance(event, Finished):
                    return dispatch.category_of(event.text, names)
                if isinstance(event, Failed):
                    raise _as_api_error(event.error)
        finally:
            if not completion.done:
                self.scheduler.cancel(completion)

    # -- collecting events ------------------------------------------------------------------------------------

    async def _collect(self, completions: list[Completion], queue: asyncio.Queue, request: Request, answer: "_Answer",
                       started: float) -> list[Finished]:
        watcher = asyncio.create_task(self._watch(request, queue))
        finished: list[Finished | None] = [None] * len(completions)
        try:
            while any(f is None for f in finished):
                index, event = await queue.get()
                if index is None:
                    raise _Gone()
                if isinstance(event, Failed):
                    raise _as_api_error(event.error)
                if isinstance(event, Finished):
                    finished[index] = event
        except _Gone:
            self.metrics.cancelled.inc()
            raise
        finally:
            watcher.cancel()
            for completion in completions:
                if not completion.done:
                    self.scheduler.cancel(completion)
        self._account(answer, finished, started)
        return finished

    async def _watch(self, request: Request, queue: asyncio.Queue) -> None:
        while not await request.is_disconnected():
            await asyncio.sleep(DISCONNECT_POLL)
        queue.put_nowait((None, None))

    async def _stream(self, answer: "_Answer", body, completions: list[Completion], queue: asyncio.Queue,
                      started: float) -> AsyncIterator[str]:
        finished: list[Finished | None] = [None] * len(completions)
        first = True
        try:
            for chunk in answer.opening():
                yield _sse(chunk)
            while any(f is None for f in finished):
                index, event = await queue.get()
                if isinstance(event, Failed):
                    self.metrics.request(answer.endpoint, answer.label, 500)  # the 200 header is already sent
                    yield _sse(_as_api_error(event.error).body())
                    return
                if first and (isinstance(event, Delta) or (isinstance(event, Finished) and event.text)):
                    first = False
                    self.metrics.first_token.labels(answer.label).observe(time.perf_counter() - started)
                if isinstance(event, Delta):
                    yield _sse(answer.delta(index, event.text))
                elif isinstance(event, Finished):
                    finished[index] = event
                    yield _sse(answer.closing(index, event.reason))
            if body.include_usage:
                yield _sse(answer.usage_chunk(finished))
            yield "data: [DONE]\n\n"
            self._account(answer, finished, started)
        finally:
            gone = [completion for completion in completions if not completion.done]
            for completion in gone:
                self.scheduler.cancel(completion)
            if gone:
                self.metrics.cancelled.inc()

    def _account(self, answer: "_Answer", finished: Sequence[Finished], started: float) -> None:
        self.metrics.request(answer.endpoint, answer.label, 200)
        self.metrics.latency.labels(answer.label).observe(time.perf_counter() - started)
        for pick, event in zip(answer.picks, finished):
            self.metrics.tokens(pick.expert, event.prompt_tokens, event.completion_tokens)


@dataclass
class _Answer:
    """What one request's response says about itself, and how its chunks look."""

    endpoint: str
    id: str
    base: str  # the base model's id
    target: Target
    picks: list[Pick]
    strategy: str | None
    created: int = 0

    def __post_init__(self) -> None:
        self.created = int(time.time())

    @property
    def uniform(self) -> bool:
        return len(set(self.picks)) == 1

    @property
    def expert(self) -> str | None:
        return self.picks[0].expert if self.uniform else None

    @property
    def label(self) -> str:
        return self.expert or "base"

    @property
    def model(self) -> str:
        """The expert that answered (OpenAI names the snapshot that served an alias), or what was asked for."""
        if not self.uniform:
            return self.target.id
        return self.picks[0].expert or self.base

    def picked(self, pick: Pick | None = None) -> dict[str, Any]:
        """The ``t2reg`` object: the expert (None: the base weights) and, for ``:auto``, the category and strategy.
        Without ``pick``, the whole response's (``mixed`` when its prompts went different ways)."""
        if pick is None:
            if not self.uniform:
                return {"expert": None, "category": None, "strategy": self.strategy, "mixed": True}
            pick = self.picks[0]
        return {"expert": pick.expert, "category": pick.category, "strategy": self.strategy}

    def headers(self) -> dict[str, str]:
        if not self.uniform:
            return {}
        pick = self.picks[0]
        return {"x-t2reg-expert": pick.expert or "base",
                **({"x-t2reg-category": pick.category} if pick.category else {})}

    def response(self, finished: Sequence[Finished]) -> dict[str, Any]:
        used = wire.usage(sum(f.prompt_tokens for f in finished), sum(f.completion_tokens for f in finished))
        if self.endpoint == "chat":
            return wire.chat_response(self.id, self.model, finished[0].text, finished[0].reason, used, self.picked())
        choices = [wire.completion_choice(i, f.text, f.reason, self.picked(pick))
                   for i, (f, pick) in enumerate(zip(finished, self.picks))]
        return wire.completion_response(self.id, self.model, choices, used, self.picked())

    def opening(self) -> list[dict[str, Any]]:
        if self.endpoint != "chat":
            return []
        return [wire.chat_chunk(self.id, self.model, self.created, {"role": "assistant", "content": ""}, None,
                                self.picked())]

    def delta(self, index: int, text: str) -> dict[str, Any]:
        if self.endpoint == "chat":
            return wire.chat_chunk(self.id, self.model, self.created, {"content": text}, None, self.picked())
        return wire.completion_chunk(self.id, self.model, self.created,
                                     wire.completion_choice(index, text, None, self.picked(self.picks[index])))

    def closing(self, index: int, reason: str) -> dict[str, Any]:
        if self.endpoint == "chat":
            return wire.chat_chunk(self.id, self.model, self.created, {}, reason, self.picked())
        return wire.completion_chunk(self.id, self.model, self.created,
                                     wire.completion_choice(index, "", reason, self.picked(self.picks[index])))

    def usage_chunk(self, finished: Sequence[Finished]) -> dict[str, Any]:
        used = wire.usage(sum(f.prompt_tokens for f in finished), sum(f.completion_tokens for f in finished))
        kind = "chat.completion.chunk" if self.endpoint == "chat" else "text_completion"
        return wire.usage_chunk(self.id, self.model, self.created, kind, used)


def _sink(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> Callable[[int], Callable[[Event], None]]:
    """Per completion index, a callback the scheduler thread may call: it hands the event to the event loop."""

    def for_index(index: int) -> Callable[[Event], None]:
        def deliver(event: Event) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (index, event))
            except RuntimeError:  # the loop has closed: the server is gone, nobody is waiting
                pass

        return deliver

    return for_index


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _as_api_error(error: BaseException) -> ApiError:
    if isinstance(error, ApiError):
        return error
    if isinstance(error, StoppedError):
        return ApiError(503, str(error), kind="server_error", code="shutting_down")
    return ApiError(500, f"generation failed: {type(error).__name__}: {error}", kind="server_error")
