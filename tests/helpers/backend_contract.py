"""What every backend must do, as checks a test runs against it (``tests/adaptation/backends/test_contract.py``
runs them on hf and on the fake backend; the vLLM probe runs them on vLLM in its own process).

A :class:`Subject` is a loaded backend with the spectra of some of its matrices and an expert's z for them.
Each ``check_*`` raises AssertionError (or the backend's own error) when the backend breaks the contract;
checks of a capability the backend does not declare verify that it refuses instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch

from t2reg.adaptation.backends import (
    Backend,
    Capability,
    DifferentiableBackend,
    GenerationRequest,
    LoglikelihoodRequest,
    Sampling,
)
from t2reg.errors import InvalidInputError
from t2reg.spectra import Spectra

PROMPTS = ["The answer is", "Question: what do plants need?", "Solve the following math problem", "(A) light"]
PAIRS = [("The answer is (", "A"), ("The answer is (", "B"), ("Question: what do plants need?", " light")]
NEW_TOKENS = 8
TOLERANCE = 1e-4  # log-probabilities of one backend in two calls: float32 sums in different batch shapes


@dataclass
class Subject:
    backend: Backend
    spectra: Spectra
    expert: Mapping[str, torch.Tensor]  # z for some of the spectra's matrices (not all ones)
    tolerance: float = TOLERANCE  # between log-probabilities of one backend in two calls


def _greedy(backend: Backend, prompts: Sequence[str], new_tokens: int = NEW_TOKENS, **sampling) -> list[str]:
    return backend.generate([GenerationRequest(p, Sampling(new_tokens, **sampling)) for p in prompts])


def _scores(backend: Backend, pairs: Sequence[tuple[str, str]] = PAIRS) -> list[float]:
    return backend.loglikelihood([LoglikelihoodRequest(c, k) for c, k in pairs])


def _close(a: Sequence[float], b: Sequence[float], tolerance: float = TOLERANCE) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def check_one_text_per_request_whatever_the_batch(s: Subject) -> None:
    together = _greedy(s.backend, PROMPTS)
    assert len(together) == len(PROMPTS) and all(isinstance(t, str) for t in together)
    assert together == [_greedy(s.backend, [p])[0] for p in PROMPTS]
    assert len(set(together)) > 1  # the prompts lead somewhere different: a comparison that can fail


def check_stop_strings_cut_the_text(s: Subject) -> None:
    for prompt, text in zip(PROMPTS, _greedy(s.backend, PROMPTS, 12)):
        if len(text) < 4:
            continue
        stop = text[len(text) // 2 : len(text) // 2 + 2]
        cut = _greedy(s.backend, [prompt], 12, stop=(stop,))[0]
        assert cut == text[: text.find(stop)], (text, stop, cut)
        return
    raise AssertionError("no prompt generated text long enough to cut")


def check_the_token_budget_and_ignore_eos(s: Subject) -> None:
    short, long = _greedy(s.backend, PROMPTS, 2), _greedy(s.backend, PROMPTS, 12)
    assert all(b.startswith(a) for a, b in zip(short, long)), (short, long)
    running = _greedy(s.backend, PROMPTS, 12, ignore_eos=True)
    # Greedy with the end tokens ignored follows the same path up to where it would have ended.
    assert all(r.startswith(t) for t, r in zip(long, running)), (long, running)


def check_seeded_sampling_and_the_nucleus(s: Subject) -> None:
    prompt = PROMPTS[0]
    draws = [_greedy(s.backend, [prompt], temperature=1.0, seed=seed)[0] for seed in range(5)]
    assert draws[3] == _greedy(s.backend, [prompt], temperature=1.0, seed=3)[0]  # reproducible given its seed
    assert len(set(draws)) > 1  # really sampled
    greedy = _greedy(s.backend, [prompt])[0]
    # A nucleus so small it holds only the most likely token: sampling is greedy, whatever the seed.
    assert {_greedy(s.backend, [prompt], temperature=1.0, top_p=1e-6, seed=seed)[0] for seed in range(3)} == {greedy}


def check_log_likelihoods(s: Subject) -> None:
    scores = _scores(s.backend)
    assert all(math.isfinite(x) and x <= 0 for x in scores), scores
    assert _close(scores, list(reversed(_scores(s.backend, list(reversed(PAIRS))))), s.tolerance), \
        "order changed a score"
    assert scores[0] != scores[1]  # two options of one question differ: the continuation is really scored


def check_patched_weights_and_restore(s: Subject) -> None:
    base = _scores(s.backend)
    with s.backend.patched(s.spectra, {n: torch.ones_like(z) for n, z in s.expert.items()}, "none"):
        assert _close(_scores(s.backend), base, max(1e-3, s.tolerance)), "z = 1 must leave the model as it is"
    with s.backend.patched(s.spectra, dict(s.expert), "none"):
        moved = _scores(s.backend)
    assert not _close(moved, base, max(1e-3, s.tolerance)), "an expert must change the scores"
    assert _close(_scores(s.backend), base, s.tolerance), "the weights must be restored after the block"


def check_declared_capabilities_are_honest(s: Subject) -> None:
    b = s.backend
    assert b.supports(Capability.GRADIENTS) == isinstance(b, DifferentiableBackend)
    if not b.supports(Capability.POPULATION):
        _refused(lambda: b.population(s.spectra, [dict(s.expert)]).__enter__())
    if not b.supports(Capability.DECODE):
        _refused(b.decoder)
    eos = b.tokenizer.eos_token_id
    assert eos is None or eos in b.eos_ids
    assert b.context_length is None or b.context_length >= 1


def check_population_rows_run_with_their_own_mixture(s: Subject) -> None:
    if not s.backend.supports(Capability.POPULATION):
        return  # refusal checked above
    base = _scores(s.backend)
    with s.backend.patched(s.spectra, dict(s.expert), "none"):
        patched = _scores(s.backend)
    requests = [LoglikelihoodRequest(c, k, variant) for variant in (0, 1) for c, k in PAIRS]
    with s.backend.population(s.spectra, [{}, dict(s.expert)], ["none", "none"]):
        scores = s.backend.loglikelihood(requests)
    tolerance = max(1e-3, s.tolerance)
    assert _close(scores[: len(PAIRS)], base, tolerance) and _close(scores[len(PAIRS) :], patched, tolerance)


def check_decoded_rows_that_join_and_leave_match_generation(s: Subject) -> None:
    """Rows join every other step and leave when done; each decodes greedily as it would alone."""
    if not s.backend.supports(Capability.DECODE):
        return  # refusal checked above
    b, eos = s.backend, s.backend.eos_ids
    alone = _greedy(b, PROMPTS)
    decoder = b.decoder()
    rows: list[tuple[int, list[int]]] = []
    waiting, outputs, step = list(enumerate(PROMPTS)), {}, 0
    while waiting or rows:
        if waiting and step % 2 == 0:
            index, prompt = waiting.pop(0)
            logits = decoder.join([b.tokenizer(prompt, add_special_tokens=False).input_ids], [None])
            rows.append((index, [int(logits[0].argmax())]))
        else:
            logits = decoder.step([tokens[-1] for _, tokens in rows], [None] * len(rows))
            for (_, tokens), row_logits in zip(rows, logits):
                tokens.append(int(row_logits.argmax()))
        keep = []
        for i, (index, tokens) in enumerate(rows):
            if tokens[-1] in eos or len(tokens) >= NEW_TOKENS:
                ended = tokens[:-1] if tokens[-1] in eos else tokens
                outputs[index] = b.tokenizer.decode(ended, skip_special_tokens=True)
            else:
                keep.append(i)
        rows = [rows[i] for i in keep]
        decoder.keep(keep)
        assert decoder.rows == len(rows)
        step += 1
    assert [outputs[i] for i in range(len(PROMPTS))] == alone


def _refused(call: Callable[[], object]) -> None:
    try:
        call()
    except InvalidInputError:
        return
    raise AssertionError("an undeclared capability must be refused with InvalidInputError")


CHECKS: dict[str, Callable[[Subject], None]] = {
    name.removeprefix("check_"): fn for name, fn in sorted(globals().items()) if name.startswith("check_")}


def run_all(subject: Subject) -> dict[str, str]:
    """Every check's outcome by name: ``ok`` or what went wrong (for a backend tested in another process)."""
    outcomes = {}
    for name, check in CHECKS.items():
        try:
            check(subject)
            outcomes[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported by name to the test that reads them
            outcomes[name] = f"{type(exc).__name__}: {exc}"[:2000]
    return outcomes
