"""Runs inside vLLM's worker processes (``LLM(worker_extension_cls=...)``).

Tensors arrive as a safetensors file in shared memory: a path crosses the
process boundary, never a pickle.
"""

from __future__ import annotations


class WeightSwapExtension:
    """Mixed into vLLM's worker class: reload named checkpoint tensors in place."""

    def t2reg_load_safetensors(self, path: str) -> int:
        from safetensors.torch import load_file

        tensors = load_file(path)
        # Checkpoint names and layout: vLLM's own loader fuses, shards and repacks.
        self.model_runner.reload_weights(weights_iterator=iter(tensors.items()), is_checkpoint_format=True)
        return len(tensors)
