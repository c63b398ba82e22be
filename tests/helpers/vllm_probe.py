"""Run the vllm backend in its own process and print what it produced, as JSON.

Usage: vllm_probe.py REQUEST.json   (model_dir, spectra_dir, expert file, prompts, loglik requests)
vLLM starts worker processes by spawning, so this runs as a script under __main__.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    from t2reg.adaptation.backends import GenerationRequest, LoglikelihoodRequest, Sampling, open_backend
    from t2reg.expert_file import read_expert
    from t2reg.spectra import Spectra

    request = json.loads(Path(sys.argv[1]).read_text())
    backend = open_backend("vllm", Path(request["model_dir"]))
    sampling = Sampling(request["max_new_tokens"])
    prompts = [GenerationRequest(backend.render(p), sampling) for p in request["prompts"]]
    pairs = [LoglikelihoodRequest(*p) for p in request["loglik"]]
    out = {"base": backend.generate(prompts), "base_loglik": backend.loglikelihood(pairs)}
    with backend.patched(Spectra.load(Path(request["spectra_dir"])), read_expert(request["expert"])):
        out["patched"] = backend.generate(prompts)
        out["patched_loglik"] = backend.loglikelihood(pairs)
    out["restored"] = backend.generate(prompts)
    # The backend contract, checked here because vLLM runs in this process (see tests/helpers/backend_contract.py).
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import torch

    from tests.helpers.backend_contract import Subject, run_all

    expert = {n: torch.as_tensor(z) for n, z in read_expert(request["expert"]).vectors.items()}
    out["contract"] = run_all(Subject(backend, Spectra.load(Path(request["spectra_dir"])), expert,
                                      tolerance=request["tolerance"]))
    print("T2REG-RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
