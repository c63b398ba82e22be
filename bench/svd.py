"""How fast is decomposing a model's matrices, and how exact?

t2reg's routine (float64 eigh of the shorter side's Gram matrix, t2reg.spectra.svd)
against ``torch.linalg.svd(full_matrices=False)`` in float32 (the routine before
issue 31), on every adapted matrix of each model, alternating matrix by matrix in
one process so a busy machine slows both alike. Accuracy is measured against
``torch.linalg.svd`` in float64: the largest relative error of a singular value,
the reconstruction error and how far U and V are from orthonormal.

The models are the converted GGUF packages in ./.t2reg-bench (bench/apply.py and
bench/science.py make them; run one of those first).

Usage: python bench/svd.py [--models smollm2-135m,gemma3-270m] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from t2reg.adaptation.models.files import matrix_loader
from t2reg.architectures import matrix_specs
from t2reg.spectra import relative_error, svd

MODELS = Path(__file__).resolve().parents[1] / ".t2reg-bench" / "models"


def _orthonormality(q: torch.Tensor) -> float:
    return float((q.T.double() @ q.double() - torch.eye(q.shape[1], dtype=torch.float64)).abs().max())


def measure(model: str) -> dict:
    folder = MODELS / model
    config = json.loads((folder / "config.json").read_text())
    load = matrix_loader(folder)
    new_s = old_s = 0.0
    worst_sigma = worst_rec = worst_orth = old_sigma = 0.0
    specs = matrix_specs(config, "all")
    for spec in specs:
        w = load(spec).float()
        start = time.perf_counter()
        ours = svd(w)
        new_s += time.perf_counter() - start
        start = time.perf_counter()
        _, old_S, _ = torch.linalg.svd(w, full_matrices=False)
        old_s += time.perf_counter() - start
        exact = torch.linalg.svd(w.double(), full_matrices=False).S
        worst_sigma = max(worst_sigma, float(((ours.S.double() - exact).abs() / exact).max()))
        old_sigma = max(old_sigma, float(((old_S.double() - exact).abs() / exact).max()))
        worst_rec = max(worst_rec, relative_error(w, ours))
        worst_orth = max(worst_orth, _orthonormality(ours.U), _orthonormality(ours.Vh.T))
    return {"model": model, "matrices": len(specs), "gram_eigh_s": round(new_s, 2), "svd_float32_s": round(old_s, 2),
            "speedup": round(old_s / new_s, 2), "max_sigma_relerr": worst_sigma, "svd_float32_sigma_relerr": old_sigma,
            "max_reconstruction_err": worst_rec, "max_orthonormality_err": worst_orth}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2-135m,gemma3-270m")
    parser.add_argument("--threads", type=int, default=None, help="torch threads [default: torch's own]")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for model in args.models.split(","):
        print(json.dumps(measure(model)))


if __name__ == "__main__":
    main()
