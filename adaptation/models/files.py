"""Model folders on disk: reading matrices from one, loading a transformers
model from it, and converting a GGUF file into one (safetensors, cached)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch
from safetensors import safe_open

from t2reg.architectures import MatrixSpec
from t2reg.errors import InvalidInputError, NotFoundError
from t2reg.files import landing_dir


def safetensors_files(model_dir: Path) -> dict[str, Path]:
    """Parameter name -> the safetensors file holding it (single file or sharded index)."""
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {name: model_dir / file for name, file in weight_map.items()}
    single = model_dir / "model.safetensors"
    if single.is_file():
        with safe_open(str(single), "pt") as fh:
            return {name: single for name in fh.keys()}
    raise NotFoundError(
        f"{model_dir} holds no safetensors weights (model.safetensors or its index); "
        "t2reg never unpickles .bin checkpoints"
    )


def matrix_loader(model_dir: Path) -> Callable[[MatrixSpec], torch.Tensor]:
    """A function reading one matrix at a time from a model directory (memory stays bounded)."""
    files = safetensors_files(model_dir)

    def load(spec: MatrixSpec) -> torch.Tensor:
        if spec.name not in files:
            raise NotFoundError(f"{model_dir} has no weight {spec.name!r}")
        with safe_open(str(files[spec.name]), "pt") as fh:
            return fh.get_tensor(spec.name)

    return load


def _quiet_transformers() -> None:
    # Its per-tensor "Loading weights" bars would clutter every command's stderr.
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def load_model(model_dir: Path, dtype: torch.dtype = torch.float32, device: str = "cpu"):
    """A transformers causal LM from a model directory, in eval mode."""
    from transformers import AutoModelForCausalLM

    _quiet_transformers()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    return model.to(device).eval()


def load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def convert_gguf(gguf_file: Path, out_dir: Path) -> Path:
    """Dequantise a GGUF file once into a safetensors model directory (with tokenizer).

    ``save_pretrained`` refuses a GGUF-loaded model, so the weights move into a
    model rebuilt from the config without its ``quantization_config``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    gguf_file = Path(gguf_file).resolve()
    if not gguf_file.is_file():
        raise InvalidInputError(f"{gguf_file}: no such GGUF file")
    try:
        with one_gguf_parse():
            loaded = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name,
                                                          dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    except (ValueError, OSError, KeyError) as exc:
        raise InvalidInputError(f"{gguf_file}: transformers cannot load it as GGUF ({exc})") from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):  # no storage and no random initialisation: every weight is assigned next
        clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    clean.load_state_dict(loaded.state_dict(), assign=True)
    clean.tie_weights()
    with landing_dir(out_dir) as staging:
        clean.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / "t2reg-source.json").write_text(json.dumps({"gguf": str(gguf_file)}))
    return out_dir


@contextmanager
def one_gguf_parse() -> Iterator[None]:
    """Within it, every ``gguf.GGUFReader`` of one file is the same parsed reader.

    transformers parses a GGUF file's metadata three times to load one model (its config, its weights, its
    tokenizer), each a fresh ``GGUFReader`` that walks the whole vocabulary entry by entry: for Gemma-3's
    262k tokens about 45 s per parse on one core, two thirds of the conversion (bench/README.md). A parsed
    reader only maps the file and is read, never changed, so handing out the first one is safe; and that one
    parse reads the vocabulary in bulk (:class:`BulkGGUFReader`, the same fields). transformers looks the
    class up at each call (``from gguf import GGUFReader``), which is where this takes effect; the original
    class is back when the block ends, also on an error.
    """
    import gguf

    from t2reg.adaptation.models.gguf_reader import BulkGGUFReader

    original = gguf.GGUFReader
    parsed: dict[tuple[str, str], object] = {}

    def shared(path, mode: str = "r"):
        key = (str(Path(path).resolve()), mode)
        if key not in parsed:
            parsed[key] = BulkGGUFReader(path, mode)
        return parsed[key]

    gguf.GGUFReader = shared
    try:
        yield
    finally:
        gguf.GGUFReader = original
