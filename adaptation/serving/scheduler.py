"""The thread that owns the model: requests in, text out, many experts in one batch.

Callers (the HTTP layer, tests, the benchmark) hand a scheduler :class:`Completion`\\ s
from any thread; the scheduler's own thread runs the model and reports each completion's
progress through the completion's ``sink`` as :class:`Delta`, :class:`Finished` or
:class:`Failed` events. Work that must not interleave with decoding (reloading
the pool, scoring for the classifier's first pass) runs in the same thread
between steps through :meth:`Scheduler.call`.

Two schedulers:

* :class:`FactoredScheduler` (backends with ``Capability.POPULATION`` and
  ``Capability.DECODE``: hf) is continuous batching on the backend's
  :class:`~t2reg.adaptation.backends.base.Decoder`: up to ``max_batch`` rows decode together, each row with
  its own expert in factored form (``y = Wx + U((σ⊙(z c − 1))⊙(Vᵀx))``, see
  :class:`~t2reg.adaptation.patching.FactoredPopulation`), rows join as soon as
  a slot is free and leave as soon as they finish. No weights are rewritten per
  request; a row's greedy output is the one it gets alone.
* :class:`GroupedScheduler` (any backend: vllm) takes the waiting requests, groups
  them by expert, pushes each group's matrices into the model and runs the
  group as one batch.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections import deque
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, Union

from t2reg.adaptation.backends import (
    Backend,
    Capability,
    GenerationRequest,
    GenerationUpdate,
    LoglikelihoodRequest,
    Sampling,
)
from t2reg.adaptation.serving.decoding import (
    MIN_TEMPERATURE,
    RowSampling,
    SamplingError,
    TextStream,
    pick_tokens,
    releasable,
)
from t2reg.errors import InvalidInputError, Remedy, T2RegError
from t2reg.expert_file import Expert
from t2reg.spectra import Spectra

log = logging.getLogger("t2reg.serve")
_DECOMPOSE = Remedy("decompose the model first", ("model", "decompose"), ("MODEL",))


# -- what a caller hands in and gets back ---------------------------------------------------------------


@dataclass(frozen=True)
class Delta:
    """More text of a streaming completion."""

    text: str


@dataclass(frozen=True)
class Finished:
    """A completion's whole text, why it ended (``stop`` or ``length``) and its token counts."""

    text: str
    reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Failed:
    error: BaseException


Event = Union[Delta, Finished, Failed]


class BusyError(T2RegError):
    """The queue of waiting requests is full."""


class StoppedError(T2RegError):
    """The scheduler is shutting down and takes no more work."""


class OverBudgetError(T2RegError):
    """A completion whose KV reservation alone exceeds the scheduler's budget: it could never be admitted."""


@dataclass(eq=False)
class Completion:
    """One completion to produce: prompt tokens, the expert (a ref; ``None`` for the base weights), sampling."""

    prompt_ids: list[int]
    expert: str | None
    max_tokens: int
    sink: Callable[[Event], None]
    prompt: str = ""  # the text ``prompt_ids`` encode (backends that take text: vllm)
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False  # send Delta events as text becomes safe to release
    ignore_eos: bool = False  # run to max_tokens whatever the model says
    cancelled: bool = False  # set by Scheduler.cancel (the client went away); the scheduler drops the completion
    done: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.temperature < MIN_TEMPERATURE:
            self.temperature = 0.0  # greedy: dividing logits by a smaller temperature overflows float32

    @property
    def reserve(self) -> int:
        """The KV-cache tokens the completion may come to hold: its prompt and every token it may generate."""
        return len(self.prompt_ids) + self.max_tokens

    def finish(self, event: Event) -> None:
        if not self.done:
            self.done = True
            self.sink(event)


# -- the scheduler thread ----------------------------------------------------------------------------------


class Scheduler(ABC):
    """A model behind a thread: :meth:`submit` completions, :meth:`call` work between steps, :meth:`stop`."""

    prefill_tokens: int = 2048  # padded prompt tokens per prefill pass (continuous batching)

    def __init__(self, backend: Backend, spectra: Spectra | None, experts: Mapping[str, Expert], *,
                 max_batch: int = 32, max_queue: int = 256, max_kv_tokens: int | None = None,
                 on_step: Callable[[int], None] | None = None) -> None:
        if max_batch < 1 or max_queue < 1 or (max_kv_tokens is not None and max_kv_tokens < 1):
            raise InvalidInputError("{max_batch}, {max_queue} and {max_kv_tokens} must be at least 1",
                                    options=["max_batch", "max_queue", "max_kv_tokens"])
        if experts and spectra is None:
            raise InvalidInputError("serving experts needs the model's spectra", remedy=_DECOMPOSE)
        self.backend = backend
        self.spectra = spectra
        self.experts: dict[str, Expert] = dict(experts)
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.max_kv_tokens = max_kv_tokens  # None: admission is bounded by max_batch alone
        self.on_step = on_step or (lambda rows: None)
        # transformers' fast tokenizers must not be used from two threads at once ("Already borrowed").
        self.tokenizer_lock = threading.Lock()
        self._waiting: deque[Completion] = deque()
        self._commands: deque[tuple[Callable[[], Any], Future]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- from any thread -------------------------------------------------------------------------------

    def start(self) -> "Scheduler":
        self._thread = threading.Thread(target=self._run, name="t2reg-scheduler", daemon=True)
        self._thread.start()
        return self

    def submit(self, completion: Completion) -> None:
        if completion.expert is not None and completion.expert not in self.experts:
            raise InvalidInputError(f"the scheduler does not hold expert {completion.expert!r}")
        if not self._fits([completion.reserve]):  # it would wait at the head of the queue for ever
            raise OverBudgetError(f"the request needs {completion.reserve} tokens of KV cache (prompt and max_tokens); "
                                  f"this server holds at most {self.max_kv_tokens}")
        with self._lock:
            if self._stopping:
                raise StoppedError("the server is shutting down")
            if len(self._waiting) >= self.max_queue:
                raise BusyError(f"{len(self._waiting)} requests are already waiting; try again later")
            self._waiting.append(completion)
        self._wake.set()

    def cancel(self, completion: Completion) -> None:
        """Drop ``completion`` at the next step (its row, if it has one, is freed); it gets no more events."""
        completion.cancelled = True
        self._wake.set()

    def call(self, fn: Callable[[], Any]) -> Future:
        """Run ``fn`` in the scheduler thread between two steps; its result (or error) arrives in the future."""
        future: Future = Future()
        with self._lock:
            if self._stopping:
                raise StoppedError("the server is shutting down")
            self._commands.append((fn, future))
        self._wake.set()
        return future

    def reload(self, experts: Mapping[str, Expert]) -> Future:
        """Serve ``experts`` from the next step on; requests already admitted keep the expert they named."""
        if experts and self.spectra is None:
            raise InvalidInputError("serving experts needs the model's spectra", remedy=_DECOMPOSE)
        return self.call(lambda: self._reload(dict(experts)))

    def score(self, requests: Sequence[tuple[str, str]], expert: str | None) -> Future:
        """Log-likelihoods of (context, continuation) pairs with ``expert`` applied (the classifier's pass)."""
        return self.call(lambda: self._score(list(requests), expert))

    def stop(self, timeout: float | None = 60.0) -> None:
        """Stop taking work, let the thread end its step, and fail whatever is left (waiting or running)."""
        with self._lock:
            self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():  # stuck in the backend: leave the (daemon) thread, answer the rest
                log.warning("the scheduler thread is still busy after %ss; stopping without it", timeout)
                with self._lock:
                    waiting, self._waiting = list(self._waiting), deque()
                for completion in waiting:
                    completion.finish(Failed(StoppedError("the server is shutting down")))
                return
        self._fail_all(StoppedError("the server is shutting down"))
        self.close()

    def encode(self, text: str) -> list[int]:
        with self.tokenizer_lock:
            return self.backend.tokenizer(text, add_special_tokens=False).input_ids

    def render(self, text: str) -> str:
        """A user turn as the model reads it (see Backend.render)."""
        with self.tokenizer_lock:
            return self.backend.render(text)

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        """A conversation ready for the assistant's turn (see Backend.render_chat)."""
        with self.tokenizer_lock:
            return self.backend.render_chat(messages)

    @property
    def context_length(self) -> int | None:
        return self.backend.context_length

    def release(self) -> None:
        """Close the backend (after :meth:`stop`): the scheduler owns it from the start."""
        self.backend.close()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    @abstractmethod
    def running(self) -> int:
        """Completions being decoded now."""

    # -- the scheduler thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()  # before looking for work: a submit from now on wakes the wait below
            self._run_commands()
            try:
                worked = self._work()
            except Exception as exc:  # noqa: BLE001 - one bad batch must not take the server down
                log.exception("scheduler step failed")
                self._fail_running(exc)
                worked = True
            if not worked:
                self._wake.wait(0.5)
        self._run_commands()

    def _run_commands(self) -> None:
        while True:
            with self._lock:
                if not self._commands:
                    return
                fn, future = self._commands.popleft()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except Exception as exc:  # noqa: BLE001 - handed to the caller
                    future.set_exception(exc)

    def _take(self, limit: int, held: Sequence[Completion] = ()) -> list[Completion]:
        """Up to ``limit`` waiting completions, oldest first, as long as their KV reservations fit the budget beside
        those of ``held`` (the completions already admitted). The first completion that does not fit stops the taking: it
        waits at the head of the queue for rows to finish, and later, smaller completions do not overtake it (so a
        long request is not starved). Cancelled completions are dropped on the way."""
        taken: list[Completion] = []
        reserves = [j.reserve for j in held]
        with self._lock:
            while self._waiting and len(taken) < limit:
                completion = self._waiting[0]
                if not completion.cancelled and not self._fits([*reserves, completion.reserve]):
                    break
                self._waiting.popleft()
                if not completion.cancelled:
                    taken.append(completion)
                    reserves.append(completion.reserve)
        return taken

    def _fits(self, reserves: list[int]) -> bool:
        """Whether rows with these KV reservations fit the budget together. The cache holds rows
        right-aligned, each as wide as the widest (hf's decoder: backends.hf_decoding.RowCache), so they cost
        rows × the longest."""
        return self.max_kv_tokens is None or len(reserves) * max(reserves, default=0) <= self.max_kv_tokens

    def _fail_all(self, error: BaseException) -> None:
        with self._lock:
            waiting, self._waiting = list(self._waiting), deque()
            commands, self._commands = list(self._commands), deque()
        for completion in waiting:
            completion.finish(Failed(error))
        for _, future in commands:
            if not future.done():
                future.set_exception(error)
        self._fail_running(error)

    @abstractmethod
    def _work(self) -> bool:
        """One step of work; False when there was nothing to do."""

    @abstractmethod
    def _fail_running(self, error: BaseException) -> None:
        """End every admitted completion with ``error`` and forget them."""

    @abstractmethod
    def _reload(self, experts: dict[str, Expert]) -> None: ...

    @abstractmethod
    def _score(self, requests: list[tuple[str, str]], expert: str | None) -> list[float]: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the scheduler put into the backend."""


# -- continuous batching with per-row experts (hf) ---------------------------------------------------------


@dataclass(eq=False)
class _Row:
    completion: Completion
    sampling: RowSampling
    text: TextStream
    pending: int = -1  # the token sampled last, fed at the next step
    generated: int = 0


class FactoredScheduler(Scheduler):
    """Continuous batching on a backend that runs each row of a batch with its own mixture (hf)."""

    def __init__(self, backend: Backend, spectra: Spectra | None, experts: Mapping[str, Expert], **options) -> None:
        if not (backend.supports(Capability.POPULATION) and backend.supports(Capability.DECODE)):
            raise InvalidInputError(f"the {backend.name} backend cannot decode rows with a different expert each")
        super().__init__(backend, spectra, experts, **options)
        self._rows: list[_Row] = []
        self._admitting: list[Completion] = []  # taken from the queue, holding a slot, not yet prefilled
        self._decoder = backend.decoder()
        self._population = ExitStack()
        self._variant: dict[str | None, int] = {}
        self._eos = backend.eos_ids
        self._install(self.experts)

    @property
    def running(self) -> int:
        return len(self._rows)

    @property
    def waiting(self) -> int:
        return len(self._waiting) + len(self._admitting)

    def _install(self, experts: dict[str, Expert]) -> None:
        """Enter the backend's population over the base weights (variant 0) and ``experts``."""
        # The old hooks go first: the backend holds one population at a time.
        self._population.close()
        refs = sorted(experts)
        mixtures = [{}] + [experts[r].vectors for r in refs]
        rules = ["none"] + [experts[r].meta.renormalize for r in refs]
        stack = ExitStack()
        stack.enter_context(self.backend.population(self.spectra, mixtures, rules))
        self._population, self.experts = stack, experts
        self._variant = {None: 0, **{r: i + 1 for i, r in enumerate(refs)}}

    def _reload(self, experts: dict[str, Expert]) -> None:
        # Rows and waiting completions keep the expert they were admitted with, even one the new pool dropped.
        in_use = {r.completion.expert for r in self._rows} | {j.expert for j in [*self._admitting, *list(self._waiting)]}
        kept = {ref: self.experts[ref] for ref in in_use if ref is not None and ref not in experts}
        old = self.experts
        try:
            self._install({**experts, **kept})
        except BaseException:
            self._install(old)
            raise

    def _score(self, requests: list[tuple[str, str]], expert: str | None) -> list[float]:
        variant = self._variant[expert]
        with self.tokenizer_lock:
            return self.backend.loglikelihood([LoglikelihoodRequest(c, k, variant) for c, k in requests])

    def close(self) -> None:
        self._population.close()

    def _work(self) -> bool:
        self._drop_cancelled()
        with self._lock:
            free = self.max_batch - len(self._rows) - len(self._admitting)
        self._admitting.extend(self._take(free, [r.completion for r in self._rows] + self._admitting))
        admitted = self._admit()
        if self._rows:
            self._decode()
        return admitted or bool(self._rows)

    def _drop_cancelled(self) -> None:
        self._admitting = [j for j in self._admitting if not j.cancelled]
        if any(r.completion.cancelled for r in self._rows):
            self._keep([i for i, r in enumerate(self._rows) if not r.completion.cancelled])

    def _admit(self) -> bool:
        """Prefill the next few completions that hold a slot: prompts of similar length together, at most
        ``prefill_tokens`` padded tokens per pass (a long queue joins over several steps, the running rows
        decoding in between)."""
        if not self._admitting:
            return False
        self._admitting.sort(key=lambda j: len(j.prompt_ids))
        count = 1
        while (count < len(self._admitting)
               and (count + 1) * len(self._admitting[count].prompt_ids) <= self.prefill_tokens):
            count += 1
        rows = [row for row in map(self._new_row, self._admitting[:count]) if row is not None]
        if rows:
            self._prefill(rows)
        # The completions leave _admitting only now: had anything above raised, _fail_running would still answer them.
        self._admitting = self._admitting[count:]
        return True

    def _new_row(self, completion: Completion) -> _Row | None:
        """``completion``'s row; None when its sampling or text state cannot be set up (the completion fails alone)."""
        try:
            return _Row(completion, RowSampling(completion.temperature, completion.top_p, completion.seed),
                        TextStream(self.backend.tokenizer, completion.stop))
        except Exception as exc:  # noqa: BLE001 - this request fails; the others go on
            log.warning("request refused by the sampler: %s: %s", type(exc).__name__, exc)
            completion.finish(Failed(exc))
            return None

    def _prefill(self, rows: list[_Row]) -> None:
        """Run the prompts of ``rows`` in one pass and add them to the batch. When a pass of several prompts
        fails, each is run again alone, so that only the prompt at fault fails."""
        completions = [r.completion for r in rows]
        try:
            logits = self._decoder.join([c.prompt_ids for c in completions],
                                        [self._variant[c.expert] for c in completions])
        except Exception as exc:  # noqa: BLE001 - these completions fail; the rows already running go on
            if len(rows) > 1:
                for row in rows:
                    self._prefill([row])
                return
            log.exception("prefill failed")
            completions[0].finish(Failed(exc))
            return
        self.on_step(len(completions))
        self._rows.extend(rows)
        self._advance(pick_tokens(logits, [r.sampling for r in rows]), start=len(self._rows) - len(rows))

    def _decode(self) -> None:
        logits = self._decoder.step([r.pending for r in self._rows],
                                    [self._variant[r.completion.expert] for r in self._rows])
        self.on_step(len(self._rows))
        self._advance(pick_tokens(logits, [r.sampling for r in self._rows]))

    def _advance(self, picked: list[int | SamplingError], start: int = 0) -> None:
        """Hand rows ``start:`` their new tokens; rows that end (or fail) leave the batch."""
        ended = {start + i for i, token in enumerate(picked) if self._step(self._rows[start + i], token)}
        if ended:
            self._keep([i for i in range(len(self._rows)) if i not in ended])

    def _step(self, row: _Row, token: int | SamplingError) -> bool:
        """Give ``row`` its token; True when the row has ended. A row whose token could not be chosen, or
        whose text cannot be made of it, fails alone."""
        error = token if isinstance(token, SamplingError) else None
        if error is None:
            try:
                return self._emit(row, token)
            except Exception as exc:  # noqa: BLE001 - this request fails; the other rows go on
                error = exc
        log.warning("request failed while decoding: %s: %s", type(error).__name__, error)
        if not row.completion.cancelled:
            row.completion.finish(Failed(error))
        return True

    def _emit(self, row: _Row, token: int) -> bool:
        """Record ``token`` for ``row``; True when the row has ended."""
        row.generated += 1
        row.pending = token
        completion = row.completion
        if token in self._eos and not completion.ignore_eos:
            reason = "stop"
        else:
            with self.tokenizer_lock:
                delta, stopped = row.text.push(token)
            if delta and completion.stream and not completion.cancelled:
                completion.sink(Delta(delta))
            if not stopped and row.generated < completion.max_tokens:
                return False
            reason = "stop" if stopped else "length"
        tail = row.text.flush()
        if tail and completion.stream and not completion.cancelled:
            completion.sink(Delta(tail))
        if not completion.cancelled:
            completion.finish(Finished(row.text.text, reason, len(completion.prompt_ids), row.generated))
        return True

    def _keep(self, indices: list[int]) -> None:
        self._rows = [self._rows[i] for i in indices]
        self._decoder.keep(indices)

    def _fail_running(self, error: BaseException) -> None:
        rows, self._rows, self._decoder = self._rows, [], self.backend.decoder()
        admitting, self._admitting = self._admitting, []
        for completion in [r.completion for r in rows] + admitting:
            completion.finish(Failed(error))


# -- one expert per group, weights pushed between groups (vllm, or any backend) --------------------------------


class GroupedScheduler(Scheduler):
    """Waiting completions grouped by expert; each group runs as one batch with its expert's matrices pushed in."""

    def __init__(self, backend: Backend, spectra: Spectra | None, experts: Mapping[str, Expert], **options) -> None:
        super().__init__(backend, spectra, experts, **options)
        self._taken: list[Completion] = []  # taken from the queue in this step, every group of it
        self._group: list[Completion] = []

    @property
    def running(self) -> int:
        return len(self._group)

    def _reload(self, experts: dict[str, Expert]) -> None:
        in_use = {j.expert for j in list(self._waiting)}
        self.experts = {**experts, **{r: self.experts[r] for r in in_use if r is not None and r not in experts}}

    def _score(self, requests: list[tuple[str, str]], expert: str | None) -> list[float]:
        with self._applied(expert), self.tokenizer_lock:
            return self.backend.loglikelihood([LoglikelihoodRequest(c, k) for c, k in requests])

    def _applied(self, expert: str | None):
        if expert is None:
            return ExitStack()
        return self.backend.patched(self.spectra, self.experts[expert])

    def _work(self) -> bool:
        self._taken = completions = self._take(self.max_batch)
        if not completions:
            return False
        groups: dict[str | None, list[Completion]] = {}
        for completion in completions:
            groups.setdefault(completion.expert, []).append(completion)
        for expert, group in groups.items():
            self._group = [j for j in group if not j.cancelled]
            if self._group:
                try:
                    self._run_group(expert)
                except Exception as exc:  # noqa: BLE001 - this group's completions fail; the other groups still run
                    log.exception("generation failed")
                    self._fail(self._group, exc)
            self._group = []
            self._run_commands()  # a reload or a score waits one group at most
        self._taken = []
        return True

    def _run_group(self, expert: str | None) -> None:
        group = self._group
        requests = [GenerationRequest(c.prompt, Sampling(c.max_tokens, c.stop, c.temperature, c.seed, c.top_p,
                                                         c.ignore_eos)) for c in group]
        sent = [0] * len(group)
        with self._applied(expert):
            self.on_step(len(requests))
            for update in self.backend.generate_stream(requests, cancelled=lambda i: group[i].cancelled):
                completion, text = group[update.index], update.text
                if completion.cancelled:
                    continue
                final = update.finish_reason is not None or update.tokens is None
                safe = len(text) if final else releasable(text, completion.stop)
                if completion.stream and safe > sent[update.index]:
                    completion.sink(Delta(text[sent[update.index] : safe]))
                    sent[update.index] = safe
                if final:
                    completion.finish(self._finished(completion, update))

    def _finished(self, completion: Completion, update: GenerationUpdate) -> Finished:
        tokens = update.tokens
        if tokens is None:  # a backend that reports only text: count its tokens again
            with self.tokenizer_lock:
                tokens = len(self.backend.tokenizer(update.text, add_special_tokens=False).input_ids)
        reason = update.finish_reason or ("length" if tokens >= completion.max_tokens else "stop")
        return Finished(update.text, reason, len(completion.prompt_ids), tokens)

    def _fail_running(self, error: BaseException) -> None:
        taken, self._taken, self._group = self._taken, [], []
        self._fail(taken, error)

    @staticmethod
    def _fail(completions: Sequence[Completion], error: BaseException) -> None:
        for completion in completions:
            if not completion.cancelled:
                completion.finish(Failed(error))  # a no-op for those already answered


def make_scheduler(backend: Backend, spectra: Spectra | None, experts: Mapping[str, Expert], **options) -> Scheduler:
    """The best scheduler the backend allows: per-row experts where it can, groups of one expert otherwise."""
    if backend.supports(Capability.POPULATION):
        return FactoredScheduler(backend, spectra, experts, **options)
    return GroupedScheduler(backend, spectra, experts, **options)
