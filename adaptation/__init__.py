"""Putting experts to work on live models.

| sub-package  | holds                                                                      |
| ------------ | -------------------------------------------------------------------------- |
| models       | loading a base model and its spectra; GGUF conversion                      |
| patching     | putting z into a model: patch, mix, population (factored) forms            |
| backends     | the inference contract and its transformers and vLLM implementations       |
| tasks        | tasks and their registry, evaluation data, answers, the code sandbox       |
| evaluation   | scoring a backend on a task; evaluation runs                                |
| search       | few-shot adaptation: optimizers, the mixture objective, the adapt job      |
| training     | SVF training by policy gradient                                            |
| dispatch     | two-pass inference: classify a prompt, answer with its category's expert   |
| serving      | t2reg serve: an OpenAI-compatible server, per-request experts in batches   |
| interop      | experts in and out: merged export, reference-code import                   |
| jobs         | the job runner and the built-in job kinds                                  |
| distributed  | one job over model replicas on Ray (optional: ``t2reg[ray]``)              |
| reporting    | plots, the demo and its time budget                                        |
| flops        | counting the floating-point work a run asks for                            |

The names below are the short way in; they load lazily, so importing a
light corner of the package (a job spec, the task registry) does not load
torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ExpertPatch": "t2reg.adaptation.patching",
    "mix": "t2reg.adaptation.patching",
    "patched_weight": "t2reg.adaptation.patching",
    "add_gguf_model": "t2reg.adaptation.models",
    "decompose_model": "t2reg.adaptation.models",
    "load_model": "t2reg.adaptation.models",
    "load_spectra": "t2reg.adaptation.models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
