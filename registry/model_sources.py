"""Where a base model's description comes from: a local directory, a built-in
shape table, or the Hugging Face Hub. Each yields a :class:`ModelSpec`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from t2reg.architectures import architecture_of, matrix_specs
from t2reg.builtin_models import BUILTIN_MODELS
from t2reg.errors import InvalidInputError, NotFoundError, shown
from t2reg.registry.validation import validate_revision


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to register a base model."""

    name: str
    config: Mapping[str, Any]
    source: str  # builtin | local | hub
    revision: str = ""
    location: str | None = None
    aliases: tuple[str, ...] = field(default=())

    @property
    def architecture(self) -> str:
        return architecture_of(self.config)

    def shapes(self) -> dict[str, list[int]]:
        """Parameter name -> ``[out, in]`` for every adaptable matrix."""
        return {m.name: [m.out_features, m.in_features] for m in matrix_specs(self.config)}


def from_builtin(alias: str) -> ModelSpec:
    builtin = BUILTIN_MODELS[alias]
    return ModelSpec(builtin.hf_id, dict(builtin.config), "builtin", aliases=(alias,))


def from_directory(path: Path, name: str | None = None, aliases: tuple[str, ...] = ()) -> ModelSpec:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise InvalidInputError(f"{path}: no config.json; a model directory needs at least that")
    config = _read_config(config_path)
    return ModelSpec(name or path.resolve().name, config, "local", location=str(path.resolve()), aliases=aliases)


def with_weights(source: str, model_dir: Path) -> ModelSpec:
    """A model whose weights were converted into ``model_dir``: a built-in keeps its name and alias."""
    if source in BUILTIN_MODELS:
        return from_directory(model_dir, BUILTIN_MODELS[source].hf_id, aliases=(source,))
    return from_directory(model_dir, source)


HUB_FILES = ["config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer*", "special_tokens_map.json",
             "generation_config.json", "chat_template.jinja"]


def from_hub(repo_id: str, revision: str | None = None, name: str | None = None) -> ModelSpec:
    """Download a hub model's config, safetensors weights and tokenizer (never pickled .bin files)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=HUB_FILES))
        config_path = folder / "config.json"
    except RepositoryNotFoundError:
        raise NotFoundError(f"no model {shown(repo_id)} on the Hugging Face Hub (or it is gated)") from None
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise NotFoundError(
            f"cannot fetch {repo_id}/config.json from the Hugging Face Hub ({type(exc).__name__}); "
            "offline? register a local directory instead"
        ) from None
    return ModelSpec(name or repo_id, _read_config(config_path), "hub", revision=revision or "", location=str(folder))


def resolve_spec(source: str, name: str | None = None, revision: str | None = None) -> ModelSpec:
    """Pick the source kind from what ``source`` looks like: a directory, a built-in, a hub id."""
    validate_revision(revision)  # before any download: it becomes part of a folder name
    path = Path(source).expanduser()
    if path.is_dir():
        return from_directory(path, name)
    if source in BUILTIN_MODELS:
        spec = from_builtin(source)
        return spec if name is None else ModelSpec(name, spec.config, spec.source, aliases=spec.aliases)
    if source.count("/") == 1 and not source.startswith((".", "/", "~")):
        return from_hub(source, revision, name)
    raise NotFoundError(
        f"{source!r} is neither a model directory, a built-in model ({', '.join(BUILTIN_MODELS)}) "
        "nor a Hugging Face id (owner/name)"
    )


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(config, dict):
        raise InvalidInputError(f"{path}: not a JSON object")
    matrix_specs(config)  # refuse unknown architectures and incomplete configs now, not at publish
    return config
