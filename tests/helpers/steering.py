"""Experts whose effect is known: z steered by gradient steps towards (or away from) the right options."""

import hashlib
from typing import Sequence

import numpy as np
import torch

from t2reg.adaptation.backends import open_backend
from t2reg.adaptation.models import load_spectra, weights_dir
from t2reg.adaptation.tasks import Example, get_task
from t2reg.expert_file import Expert, ExpertMeta

_MADE: dict[tuple, Expert] = {}


def steered_expert(registry, model: str, examples: Sequence[Example], sign: int, steps: int = 40,
                   task_name: str = "arc-easy") -> Expert:
    """z on every MLP matrix, pushed by gradient steps to raise (sign=+1) or lower (-1) the probability of
    the right option among each example's options, scored as the task scores them (cloze: each option's
    text as the continuation of the question): an expert whose effect we know.

    Made once per run for the same weights and inputs: the tiny models of many tests are the same seeded
    weights, and steering is the slow part of their fixtures."""
    weights = hashlib.sha256((weights_dir(registry, model) / "model.safetensors").read_bytes()).hexdigest()
    key = (weights, registry.get_model(model).name, tuple(examples), sign, steps, task_name)
    if key not in _MADE:
        _MADE[key] = _steer(registry, model, examples, sign, steps, task_name)
    return _MADE[key]


def _steer(registry, model: str, examples: Sequence[Example], sign: int, steps: int, task_name: str) -> Expert:
    backend = open_backend("hf", weights_dir(registry, model))
    spectra = load_spectra(model, registry)
    task = get_task(task_name)
    names = spectra.names()
    logits_z = {n: torch.zeros_like(spectra[n].S, requires_grad=True) for n in names}
    optimizer = torch.optim.Adam(logits_z.values(), lr=0.1)
    # One padded batch per example (its options share the question's length): prompts of very different
    # lengths in one batch cost the longest one's length for every row (2.5x the arithmetic for dispatch).
    batches = []
    for ex in examples:
        pairs = [backend.split_continuation(task.cloze_prompt(ex), f" {text}") for text in ex.choices]
        batches.append((ex, pairs, *backend.pad([c + k for c, k in pairs]), max(len(k) for _, k in pairs) + 1))
    for _ in range(steps):
        weights = {n: (spectra[n].U * (spectra[n].S * (1 + torch.tanh(logits_z[n])))) @ spectra[n].Vh for n in names}
        loss = 0
        for ex, pairs, ids, mask, keep in batches:
            logprobs = torch.log_softmax(backend.logits(ids, mask, keep, weights), -1)
            totals = torch.stack([logprobs[row, keep - len(k) - 1 : keep - 1][torch.arange(len(k)), torch.tensor(k)].sum()
                                  for row, (_, k) in enumerate(pairs)])
            loss = loss - sign * torch.log_softmax(totals, -1)["ABCDE".index(ex.answer)]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    z = {n: (1 + torch.tanh(logits_z[n])).detach().numpy().astype(np.float32) for n in names}
    info = registry.get_model(model)
    return Expert(z, ExpertMeta(base_model=info.name, architecture=info.architecture, renormalize="none",
                                task=task_name))
