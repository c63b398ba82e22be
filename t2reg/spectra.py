"""Spectra: the SVD W = U diag(S) Vh of each adapted matrix, computed once per model.

Computed in float64 from the Gram matrix of the shorter side (an eigh of
W Wᵀ or WᵀW, the other factor from W) and stored in float32, one matrix at a
time (memory is bounded by one matrix's factors), on the best device there is.
On two cores that is 3-4x faster than ``torch.linalg.svd`` in float32 for the
rectangular matrices of an LLM and more precise for every singular value within
a factor 10^5 of the largest (squaring costs digits only below that; a matrix
conditioned worse than that is decomposed by ``torch.linalg.svd`` in float64). Stored as safetensors shards, one per layer and module group, with a
``manifest.json`` holding provenance, per-shard sha256 and per-matrix
reconstruction error. Each shard lands atomically and the manifest is
rewritten after it, so an interrupted run resumes at the first missing shard.
Loading maps the shards into memory rather than reading them.

Sign convention: singular vectors are unique only up to sign; each pair is
flipped so that the largest-magnitude entry of the left vector U[:, i] is
positive. Two runs on the same weights give the same factors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

import torch

from t2reg import safetensors_io
from t2reg.architectures import MatrixSpec
from t2reg.errors import IntegrityCheckError, NotFoundError, Remedy
from t2reg.files import land_text

MANIFEST = "manifest.json"
SVD_ROUTINE = "float64 eigh of the shorter side's Gram matrix (torch.linalg.svd, float64, past condition 1e5); stored float32"
SIGN_CONVENTION = "largest-|.| entry of each left singular vector is positive"
RECONSTRUCTION_TOLERANCE = 1e-4  # relative Frobenius error; the float32 factors land near 1e-7
GRAM_CONDITION_LIMIT = 1e5  # past it, squaring the matrix would cost the smallest singular values their digits

WeightLoader = Callable[[MatrixSpec], torch.Tensor]


@dataclass(frozen=True)
class Factors:
    """One matrix's SVD in (out, in) orientation: W = (U * S) @ Vh."""

    U: torch.Tensor
    S: torch.Tensor
    Vh: torch.Tensor

    def to(self, device: torch.device | str) -> "Factors":
        return Factors(self.U.to(device), self.S.to(device), self.Vh.to(device))


def best_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def svd(weight: torch.Tensor, device: str | torch.device = "cpu") -> Factors:
    """The thin SVD in float32 factors (computed in float64) with the fixed sign convention."""
    w = weight.detach().to(device=device, dtype=torch.float64)
    U, S, Vh = _gram_svd(w)
    if S[-1] * GRAM_CONDITION_LIMIT < S[0]:
        U, S, Vh = torch.linalg.svd(w, full_matrices=False)
    pivot = U.abs().argmax(dim=0)
    signs = torch.sign(U[pivot, torch.arange(U.shape[1], device=U.device)])
    signs[signs == 0] = 1
    return Factors((U * signs).float(), S.float(), (Vh * signs[:, None]).float())


def _gram_svd(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # The eigenvectors of the k x k Gram matrix (k the shorter side) are one set of singular vectors and its
    # eigenvalues the squared singular values; the other set follows as W v / s. eigh returns ascending order.
    wide = w.shape[0] <= w.shape[1]
    values, vectors = torch.linalg.eigh(w @ w.T if wide else w.T @ w)
    S = values.flip(0).clamp_min(0).sqrt()
    vectors = vectors.flip(1)
    inverse = torch.where(S > 0, 1 / S, torch.zeros_like(S))
    if wide:
        return vectors, S, (vectors.T @ w) * inverse[:, None]
    return (w @ vectors) * inverse, S, vectors.T


def relative_error(weight: torch.Tensor, f: Factors) -> float:
    w = weight.detach().to(device=f.U.device, dtype=torch.float32)
    norm = torch.linalg.matrix_norm(w).item()
    diff = torch.linalg.matrix_norm((f.U * f.S) @ f.Vh - w).item()
    return diff / norm if norm > 0 else diff


class Spectra:
    """Memory-mapped factors of one model's decomposed matrices."""

    def __init__(self, root: Path, manifest: dict, factors: dict[str, Factors]) -> None:
        self.root = root
        self.manifest = manifest
        self._factors = factors

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    def names(self) -> list[str]:
        return sorted(self._factors)

    def __contains__(self, name: str) -> bool:
        return name in self._factors

    def __getitem__(self, name: str) -> Factors:
        try:
            return self._factors[name]
        except KeyError:
            raise NotFoundError(f"no spectrum for {name!r} in {self.root}",
                                remedy=Remedy("decompose every module group", ("model", "decompose"), ("MODEL",),
                                              (("modules", "all"),))) from None

    def to(self, device: torch.device | str) -> "Spectra":
        """A copy with every factor on ``device`` (worth it before many applies on a GPU)."""
        return Spectra(self.root, self.manifest, {k: f.to(device) for k, f in self._factors.items()})

    @classmethod
    def load(cls, root: Path, verify: bool = False) -> "Spectra":
        """Map every shard listed in the manifest; ``verify`` re-hashes each shard first."""
        manifest = read_manifest(root)
        if manifest is None or not manifest["shards"]:
            raise NotFoundError(f"no spectra at {root}",
                                remedy=Remedy("decompose the model first", ("model", "decompose"), ("MODEL",)))
        factors: dict[str, Factors] = {}
        for shard, info in sorted(manifest["shards"].items()):
            path = root / shard
            if verify and _sha256(path) != info["sha256"]:
                raise IntegrityCheckError(f"spectra shard {path} does not match its manifest checksum")
            arrays, _ = safetensors_io.mmap_file(path)
            for name in info["matrices"]:
                factors[name] = Factors(*(torch.from_numpy(arrays[f"{name}:{part}"]) for part in ("U", "S", "Vh")))
        return cls(root, manifest, factors)


def decompose(
    specs: Iterable[MatrixSpec],
    load_weight: WeightLoader,
    root: Path,
    *,
    model: str,
    revision: str = "",
    group: str = "mlp",
    device: str | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> dict:
    """Compute and store the spectra of ``specs``, skipping shards already done.

    Returns the manifest. ``load_weight`` gives a matrix in its stored
    orientation; transposed (Conv1D) weights are turned to (out, in) here.
    """
    device = device or best_device()
    root.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(root) or _new_manifest(model, revision)
    by_shard: dict[str, list[MatrixSpec]] = {}
    for spec in specs:
        by_shard.setdefault(f"{group}-{spec.layer:04d}.safetensors", []).append(spec)
    todo = [s for s in sorted(by_shard) if s not in manifest["shards"] or not (root / s).is_file()]
    bar = progress(todo) if progress else todo
    for shard in bar:
        tensors, errors = {}, {}
        for spec in by_shard[shard]:
            weight = load_weight(spec)
            weight = weight.T if spec.transposed else weight
            factors = svd(weight, device)
            errors[spec.name] = relative_error(weight, factors)
            if errors[spec.name] > RECONSTRUCTION_TOLERANCE:
                raise IntegrityCheckError(f"SVD of {spec.name} reconstructs with relative error {errors[spec.name]:.2e}")
            for part, tensor in zip(("U", "S", "Vh"), (factors.U, factors.S, factors.Vh)):
                tensors[f"{spec.name}:{part}"] = tensor.cpu().numpy()
        sha = safetensors_io.write_file(root / shard, tensors, {"model": model, "group": group})
        manifest["shards"][shard] = {"sha256": sha, "matrices": [s.name for s in by_shard[shard]]}
        for spec in by_shard[shard]:
            manifest["matrices"][spec.name] = {"shard": shard, "rank": spec.rank, "relative_error": errors[spec.name]}
        _write_manifest(root, manifest)
    return manifest


def read_manifest(root: Path) -> dict | None:
    try:
        return json.loads((root / MANIFEST).read_text())
    except FileNotFoundError:
        return None


def _new_manifest(model: str, revision: str) -> dict:
    return {
        "format": "t2reg.spectra",
        "format_version": 1,
        "model": model,
        "revision": revision,
        "dtype": "float32",
        "svd_routine": SVD_ROUTINE,
        "sign_convention": SIGN_CONVENTION,
        "torch_version": torch.__version__,
        "shards": {},
        "matrices": {},
        "fingerprint": "",
    }


def _write_manifest(root: Path, manifest: dict) -> None:
    manifest["fingerprint"] = fingerprint(manifest["shards"])
    land_text(root / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))


def fingerprint(shards: Mapping[str, Mapping]) -> str:
    """A hash over the shard checksums: equal fingerprints mean equal factors."""
    digest = hashlib.sha256()
    for name in sorted(shards):
        digest.update(f"{name}={shards[name]['sha256']};".encode())
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
