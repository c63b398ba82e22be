"""Projection transfer, the part that runs models: collect the moments on shared text, then project.

Both base models read the same texts; at every position where their
tokenizers end a token at the same character, each paired matrix's input is
captured (a forward pre-hook) and turned into singular coordinates
(b = V_sᵀ a_s, c = V_tᵀ a_t), whose moments accumulate per pair
(:class:`t2reg.transfer.projection.Moments`). Every fifth text is held out,
whole, for the map's R^2 (positions of one text are alike; holding out texts
keeps the estimate honest).

The moments depend on the two models and the texts only, not on any expert:
they are computed once and cached under ``<home>/cache/projection/<key>``
(landed atomically; a partial file every few batches lets a killed job
continue), and every expert projected between the same models on the same
texts, and its control, reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
from safetensors.numpy import load_file, save

from t2reg.adaptation.crossmodel.cache import cache_folder, model_identity, write
from t2reg.adaptation.crossmodel.positions import encode, right_padded, shared_positions
from t2reg.adaptation.crossmodel.texts import Texts
from t2reg.adaptation.models import load_model, load_spectra
from t2reg.adaptation.models.files import load_tokenizer
from t2reg.adaptation.models.registered import weights_dir
from t2reg.architectures import MatrixSpec, needs_bos
from t2reg.errors import InvalidInputError
from t2reg.registry import Registry
from t2reg.spectra import Spectra
from t2reg.transfer.alignment import source_position
from t2reg.transfer.layout import Layout
from t2reg.transfer.projection import Moments

HELDOUT_EVERY = 5  # every fifth text is held out for the map's R^2
BATCH = 8  # texts per forward pass
SAVE_EVERY = 25  # batches between partial saves

Progress = Callable[[Iterable], Iterable]


@dataclass(frozen=True)
class Pair:
    """A target matrix and the source matrix it is fitted against (same role, nearest layer by depth)."""

    target: MatrixSpec
    source: MatrixSpec


def pairs_for(source: Layout, target: Layout, roles: Iterable[str]) -> list[Pair]:
    """Each target matrix of ``roles`` with its source matrix: the source layer nearest the target layer's
    relative depth, the same role (a projection pairs matrices one to one)."""
    pairs = []
    wanted = set(roles)
    for (layer, role), spec in sorted(target.matrices.items()):
        if role not in wanted:
            continue
        src_layer = round(source_position(layer, source.num_layers, target.num_layers))
        src = source.matrices.get((src_layer, role))
        if src is None:
            raise InvalidInputError(f"{source.name} has no {role} matrix at layer {src_layer} to pair with "
                                    f"{target.name}'s {spec.name}; projection pairs matrices of the same role")
        pairs.append(Pair(spec, src))
    if not pairs:
        raise InvalidInputError(f"no matrix of {target.name} has a role the expert covers ({', '.join(sorted(wanted))})")
    return pairs


@dataclass
class PairMoments:
    fit: Moments
    heldout: Moments


class MomentCache:
    """The moments of one (source, target, texts, pairs) combination under the home, whole or partial."""

    def __init__(self, registry: Registry, key: dict) -> None:
        self.key = key
        self.folder = cache_folder(registry, "projection", key)
        self.done, self.partial = self.folder / "moments.safetensors", self.folder / "partial.safetensors"

    def load(self, partial: bool = False) -> tuple[dict[str, PairMoments], int] | None:
        path = self.partial if partial else self.done
        if not path.is_file():
            return None
        arrays = load_file(str(path))
        texts_done = int(arrays.pop("__texts_done__")[0])
        names = sorted({k.split("|", 2)[1] for k in arrays})
        out = {}
        for name in names:
            parts = {}
            for split in ("fit", "heldout"):
                prefix = f"{split}|{name}|"
                parts[split] = Moments.from_arrays({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
            out[name] = PairMoments(parts["fit"], parts["heldout"])
        return out, texts_done

    def save(self, moments: dict[str, PairMoments], texts_done: int, final: bool) -> None:
        arrays = {"__texts_done__": np.array([texts_done], dtype=np.float64)}
        for name, pm in moments.items():
            for split, m in (("fit", pm.fit), ("heldout", pm.heldout)):
                arrays |= {f"{split}|{name}|{k}": np.ascontiguousarray(v) for k, v in m.arrays().items()}
        data = save(arrays, metadata={"format": "t2reg.projection-moments"})
        write(self.folder, (self.done if final else self.partial).name, data, self.key)
        if final and self.partial.exists():
            self.partial.unlink()


class _Side:
    """One model reading the texts: its tokenizer, its <bos>, hooks that capture its paired matrices' inputs,
    and the right singular vectors that turn an input into coordinates."""

    def __init__(self, registry: Registry, model: str, specs: list[MatrixSpec]) -> None:
        specs = list({s.name: s for s in specs}.values())  # a matrix named twice is captured once
        self.model = load_model(model, registry)
        self.model.requires_grad_(False)
        self.tokenizer = load_tokenizer(weights_dir(registry, model))
        bos = self.tokenizer.bos_token_id
        self.bos = [bos] if needs_bos(self.model.config.architectures[0]) and bos is not None else []
        self.pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        spectra: Spectra = load_spectra(model, registry)
        missing = [s.name for s in specs if s.name not in spectra]
        if missing:
            raise InvalidInputError(f"{model} has no spectra for {len(missing)} matrices (e.g. {missing[0]}): "
                                    f"decompose it first")
        self.vh = {s.name: spectra[s.name].Vh.float() for s in specs}
        self.captured: dict[str, torch.Tensor] = {}
        self._hooks = [self.model.get_submodule(s.name.removesuffix(".weight")).register_forward_pre_hook(
            self._capture(s.name)) for s in specs]

    def _capture(self, name: str):
        def hook(_module, args):
            self.captured[name] = args[0].detach()
        return hook

    def run(self, rows: list[list[int]]) -> None:
        ids, mask = right_padded(rows, self.pad)
        with torch.no_grad():
            self.model.base_model(input_ids=ids, attention_mask=mask)  # the matrices' inputs; no logits needed

    def coordinates(self, name: str, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        return self.captured[name][rows, cols].float() @ self.vh[name].T

    def close(self) -> None:
        for h in self._hooks:
            h.remove()


def collect(registry: Registry, source_model: str, target_model: str, pairs: list[Pair], texts: Texts,
            progress: Progress | None = None, on_save: Callable[[int], None] | None = None) -> dict[str, PairMoments]:
    """The moments of every pair over ``texts`` (cached; a partial run continues)."""
    cache = MomentCache(registry, _key(registry, source_model, target_model, pairs, texts))
    found = cache.load()
    if found is not None:
        return found[0]
    resumed = cache.load(partial=True)
    moments, start = resumed if resumed is not None else (
        {p.target.name: PairMoments(Moments.zeros(p.source.rank, p.target.rank),
                                    Moments.zeros(p.source.rank, p.target.rank)) for p in pairs}, 0)
    # A model projected onto itself (the ladder's first rung, the tests' sanity check) reads the texts once.
    same = registry.get_model(source_model).name == registry.get_model(target_model).name
    source = _Side(registry, source_model, [p.source for p in pairs] + ([p.target for p in pairs] if same else []))
    target = source if same else _Side(registry, target_model, [p.target for p in pairs])
    generator = torch.Generator().manual_seed(texts.seed)
    try:
        batches = list(range(start, len(texts.items), BATCH))
        for count, first in enumerate((progress or (lambda it: it))(batches), 1):
            _batch(source, target, pairs, texts.items[first: first + BATCH], first, moments, generator)
            done = min(first + BATCH, len(texts.items))
            if count % SAVE_EVERY == 0 and done < len(texts.items):
                cache.save(moments, done, final=False)
                if on_save:
                    on_save(done)
    finally:
        source.close()
        if target is not source:
            target.close()
    cache.save(moments, len(texts.items), final=True)
    return moments


def _batch(source: _Side, target: _Side, pairs: list[Pair], batch: tuple[str, ...], first: int,
           moments: dict[str, PairMoments], generator: torch.Generator) -> None:
    enc_s = [encode(source.tokenizer, text, source.bos) for text in batch]
    enc_t = enc_s if target is source else [encode(target.tokenizer, text, target.bos) for text in batch]
    source.run([e.ids for e in enc_s])
    if target is not source:
        target.run([e.ids for e in enc_t])
    for heldout in (False, True):
        rows = [i for i in range(len(batch)) if ((first + i) % HELDOUT_EVERY == HELDOUT_EVERY - 1) == heldout]
        index_s, index_t = _gather(rows, enc_s, enc_t)
        if len(index_s[0]) == 0:
            continue
        # The control's pairing: each source position against a target position drawn from another place.
        shuffled = torch.randperm(len(index_t[0]), generator=generator)
        known: dict[tuple[int, str], np.ndarray] = {}  # one side's coordinates of one matrix, computed once
        for pair in pairs:
            b = _coordinates(known, source, pair.source.name, index_s)
            c = _coordinates(known, target, pair.target.name, index_t)  # the same array when a matrix meets itself
            part = moments[pair.target.name]
            (part.heldout if heldout else part.fit).add(b, c, c[shuffled.numpy()])


def _coordinates(known: dict[tuple[int, str], np.ndarray], side: _Side, name: str,
                 index: tuple[torch.Tensor, torch.Tensor]) -> np.ndarray:
    if (id(side), name) not in known:
        known[id(side), name] = side.coordinates(name, *index).numpy()
    return known[id(side), name]


def _gather(rows: list[int], enc_s, enc_t) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    rs, cs, rt, ct = [], [], [], []
    for row in rows:
        pos_s, pos_t = shared_positions(enc_s[row], enc_t[row])
        rs += [row] * len(pos_s)
        cs += pos_s
        rt += [row] * len(pos_t)
        ct += pos_t
    as_long = lambda v: torch.tensor(v, dtype=torch.long)  # noqa: E731
    return (as_long(rs), as_long(cs)), (as_long(rt), as_long(ct))


def _key(registry: Registry, source: str, target: str, pairs: list[Pair], texts: Texts) -> dict:
    return {"source": model_identity(registry, source), "target": model_identity(registry, target),
            "texts": texts.identity(),
            "pairs": [[p.target.name, p.source.name] for p in pairs], "heldout_every": HELDOUT_EVERY,
            "batch": BATCH, "version": 1}

