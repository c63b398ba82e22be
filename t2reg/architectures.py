"""The architecture table: each supported model family's adaptable matrices.

Every entry maps the base model's own parameter names to a canonical
``(layer, role)`` and knows each matrix's shape from the model's ``config.json``
alone, so shape checks and index transfers need no weights. Roles are
``q k v o gate up down`` plus the fused ``qkv`` and ``gate_up`` of Phi-3 style
models. New families are added with :func:`register_architecture`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from t2reg.errors import InvalidInputError, UnsupportedArchitectureError
from t2reg.names import Names

MLP_ROLES = frozenset({"gate", "up", "down", "gate_up"})
ATTN_ROLES = frozenset({"q", "k", "v", "o", "qkv"})
MODULE_GROUPS = {"mlp": MLP_ROLES, "attn": ATTN_ROLES, "all": MLP_ROLES | ATTN_ROLES}


@dataclass(frozen=True)
class MatrixSpec:
    """One adaptable weight matrix of a base model, in ``(out, in)`` orientation."""

    name: str
    layer: int
    role: str
    out_features: int
    in_features: int
    transposed: bool = False  # stored as (in, out), e.g. GPT-2's Conv1D

    @property
    def rank(self) -> int:
        """Length of an SVF vector for this matrix: ``min(out, in)``."""
        return min(self.out_features, self.in_features)


@dataclass(frozen=True)
class Architecture:
    """How one model family names and shapes its matrices.

    ``templates`` maps role to parameter-name template with a ``{layer}`` field;
    ``shapes`` turns a config into ``{role: (out, in)}``.
    """

    key: str
    class_names: tuple[str, ...]
    templates: Mapping[str, str]
    shapes: Callable[[Mapping[str, Any]], dict[str, tuple[int, int]]]
    num_layers_key: str = "num_hidden_layers"
    transposed: bool = False
    model_types: tuple[str, ...] = ()  # config.json ``model_type`` values, for configs without ``architectures``
    # The family was trained with <bos> opening every sequence and scores far worse without it (Gemma-3-270M,
    # ARC-Easy cloze: 0.35 without, 0.63 with, 150 questions); lm-evaluation-harness prepends it for Gemma.
    bos_first: bool = False
    _patterns: dict[str, re.Pattern[str]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for role, template in self.templates.items():
            regex = re.escape(template).replace(re.escape("{layer}"), r"(\d+)")
            self._patterns[role] = re.compile(regex)

    def matrices(self, config: Mapping[str, Any], modules: str = "all") -> list[MatrixSpec]:
        """Every adaptable matrix for ``config``, layer by layer in role order."""
        roles = _roles_for(modules)
        shapes = self.shapes(config)
        specs = []
        for layer in range(int(_require(config, self.num_layers_key))):
            for role, template in self.templates.items():
                if role in roles:
                    out, inp = shapes[role]
                    specs.append(MatrixSpec(template.format(layer=layer), layer, role, out, inp, self.transposed))
        return specs

    def locate(self, name: str) -> tuple[int, str] | None:
        """``(layer, role)`` of a parameter name, or None when it is no adaptable matrix."""
        for role, pattern in self._patterns.items():
            match = pattern.fullmatch(name)
            if match:
                return int(match.group(1)), role
        return None


# Keyed by transformers class name; one family (Architecture) may sit under several.
ARCHITECTURES: Names[Architecture] = Names("architecture", UnsupportedArchitectureError)


def register_architecture(arch: Architecture) -> Architecture:
    """Add an architecture to the table under each of its transformers class names."""
    for class_name in arch.class_names:
        ARCHITECTURES.add(class_name, arch)
    return arch


def supported_architectures() -> list[str]:
    """Class names the table covers, sorted."""
    return ARCHITECTURES.names()


def needs_bos(class_name: str) -> bool:
    """Whether the family behind ``class_name`` must see ``<bos>`` first (False for classes not in the table)."""
    entry = ARCHITECTURES.find(class_name)
    return entry is not None and entry.bos_first


def get_architecture(class_name: str) -> Architecture:
    """The table entry for a transformers class name such as ``LlamaForCausalLM``."""
    return ARCHITECTURES.get(class_name)


def architecture_of(config: Mapping[str, Any]) -> str:
    """The class name a ``config.json`` declares (or its ``model_type`` implies)."""
    names = config.get("architectures") or []
    if names:
        return str(names[0])
    model_type = config.get("model_type")
    for class_name, arch in ARCHITECTURES.items():
        if model_type in arch.model_types:
            return class_name
    raise InvalidInputError(
        f"config.json has no 'architectures' entry and model_type {model_type!r} is not in the table; "
        "cannot tell the model family"
    )


def matrix_specs(config: Mapping[str, Any], modules: str = "all") -> list[MatrixSpec]:
    """Adaptable matrices of the model a ``config.json`` describes."""
    return get_architecture(architecture_of(config)).matrices(config, modules)


def _roles_for(modules: str) -> frozenset[str]:
    try:
        return MODULE_GROUPS[modules]
    except KeyError:
        raise InvalidInputError(f"unknown module group {modules!r}; choose one of {', '.join(MODULE_GROUPS)}") from None


def _require(config: Mapping[str, Any], key: str) -> Any:
    if config.get(key) is None:
        raise InvalidInputError(f"config.json lacks {key!r}, which the shape table needs")
    return config[key]


def _attention_dims(config: Mapping[str, Any]) -> tuple[int, int, int, int]:
    hidden = int(_require(config, "hidden_size"))
    heads = int(_require(config, "num_attention_heads"))
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    return hidden, heads, kv_heads, head_dim


def _split_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    hidden, heads, kv_heads, head_dim = _attention_dims(config)
    inter = int(_require(config, "intermediate_size"))
    return {
        "q": (heads * head_dim, hidden),
        "k": (kv_heads * head_dim, hidden),
        "v": (kv_heads * head_dim, hidden),
        "o": (hidden, heads * head_dim),
        "gate": (inter, hidden),
        "up": (inter, hidden),
        "down": (hidden, inter),
    }


def _fused_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    hidden, heads, kv_heads, head_dim = _attention_dims(config)
    inter = int(_require(config, "intermediate_size"))
    return {
        "qkv": ((heads + 2 * kv_heads) * head_dim, hidden),
        "o": (hidden, heads * head_dim),
        "gate_up": (2 * inter, hidden),
        "down": (hidden, inter),
    }


def _gpt2_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    hidden = int(_require(config, "n_embd"))
    inner = int(config.get("n_inner") or 4 * hidden)
    return {"qkv": (3 * hidden, hidden), "o": (hidden, hidden), "up": (inner, hidden), "down": (hidden, inner)}


_LLAMA_STYLE = {
    "q": "model.layers.{layer}.self_attn.q_proj.weight",
    "k": "model.layers.{layer}.self_attn.k_proj.weight",
    "v": "model.layers.{layer}.self_attn.v_proj.weight",
    "o": "model.layers.{layer}.self_attn.o_proj.weight",
    "gate": "model.layers.{layer}.mlp.gate_proj.weight",
    "up": "model.layers.{layer}.mlp.up_proj.weight",
    "down": "model.layers.{layer}.mlp.down_proj.weight",
}


def _register_builtins(entries: Iterable[Architecture]) -> None:
    for entry in entries:
        register_architecture(entry)


_register_builtins(
    [
        Architecture("llama", ("LlamaForCausalLM",), _LLAMA_STYLE, _split_shapes, model_types=("llama",)),
        Architecture("mistral", ("MistralForCausalLM",), _LLAMA_STYLE, _split_shapes, model_types=("mistral",)),
        Architecture("qwen2", ("Qwen2ForCausalLM",), _LLAMA_STYLE, _split_shapes, model_types=("qwen2",)),
        Architecture("qwen3", ("Qwen3ForCausalLM",), _LLAMA_STYLE, _split_shapes, model_types=("qwen3",)),
        Architecture("gemma2", ("Gemma2ForCausalLM",), _LLAMA_STYLE, _split_shapes, model_types=("gemma2",),
                     bos_first=True),
        Architecture("gemma3", ("Gemma3ForCausalLM",), _LLAMA_STYLE, _split_shapes, model_types=("gemma3_text",),
                     bos_first=True),
        Architecture(
            "phi3",
            ("Phi3ForCausalLM",),
            {
                "qkv": "model.layers.{layer}.self_attn.qkv_proj.weight",
                "o": "model.layers.{layer}.self_attn.o_proj.weight",
                "gate_up": "model.layers.{layer}.mlp.gate_up_proj.weight",
                "down": "model.layers.{layer}.mlp.down_proj.weight",
            },
            _fused_shapes,
            model_types=("phi3",),
        ),
        Architecture(
            "gpt2",
            ("GPT2LMHeadModel",),
            {
                "qkv": "transformer.h.{layer}.attn.c_attn.weight",
                "o": "transformer.h.{layer}.attn.c_proj.weight",
                "up": "transformer.h.{layer}.mlp.c_fc.weight",
                "down": "transformer.h.{layer}.mlp.c_proj.weight",
            },
            _gpt2_shapes,
            num_layers_key="n_layer",
            transposed=True,
            model_types=("gpt2",),
        ),
    ]
)
