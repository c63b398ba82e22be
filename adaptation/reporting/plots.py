"""Pictures of a job from its events: search curves and alpha weights, or a training curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from t2reg.errors import InvalidInputError
from t2reg.files import landing
from t2reg.registry.entities import JobEvent, JobInfo


def plot_job(job: JobInfo, events: Sequence[JobEvent], out: str | Path) -> Path:
    """Write a PNG for ``job``; which panels depend on the job's kind."""
    if not events:
        raise InvalidInputError(f"job {job.id} has no completed steps to plot yet")
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    rows = [e.data for e in events]
    panels = _search_panels if "best" in rows[0] else _curve_panels
    fig, axes = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    panels(axes, rows, job)
    axes[-1].set_xlabel("iteration")
    fig.suptitle(f"job {job.id}: {job.kind} {job.spec.get('task', '')} on {job.spec.get('model', '')}".strip())
    fig.tight_layout()
    return _save(fig, out)


def _search_panels(axes, rows: list[dict[str, Any]], job: JobInfo) -> None:
    it = [r["iteration"] for r in rows]
    axes[0].plot(it, [r["best"][0] for r in rows], marker="o", label="best so far")
    axes[0].plot(it, [r["generation_best"][0] for r in rows], linestyle="--", label="generation best")
    mean = [r["mean_score"] if r["mean_score"] is not None else np.nan for r in rows]
    std = [r["std_score"] if r["std_score"] is not None else np.nan for r in rows]
    axes[0].errorbar(it, mean, yerr=std, capsize=3, label="population mean ± std")
    axes[0].set_ylabel("score on the shots")
    axes[0].legend(loc="lower right")
    alpha = np.asarray([r["best_alpha"] for r in rows], dtype=float)
    if job.spec.get("mix_space") == "strength":  # the last coordinate is the strength, s / 3
        axes[1].plot(it, alpha[:, -1], linestyle=":", color="black", label="strength s / 3")
        alpha = alpha[:, :-1]
    components = (job.state or {}).get("components") or [f"expert {i}" for i in range(alpha.shape[1])]
    if job.spec.get("per_matrix"):
        alpha = alpha.reshape(len(rows), len(components), -1).mean(axis=2)
    for k in range(alpha.shape[1]):
        axes[1].plot(it, alpha[:, k], marker=".", label=components[k] if k < len(components) else f"expert {k}")
    axes[1].set_ylabel("alpha of the best mixture" + (" (mean over matrices)" if job.spec.get("per_matrix") else ""))
    axes[1].legend(loc="best", fontsize="small")


def _curve_panels(axes, rows: list[dict[str, Any]], job: JobInfo) -> None:
    for key, label in (("reward", "mean reward (+1/-1)"), ("validation", "validation score")):
        points = [(r["iteration"], r[key]) for r in rows if r.get(key) is not None]  # validation: every k-th
        if points:
            axes[0].plot(*zip(*points), marker="o", label=label)
    axes[0].set_ylabel("score")
    axes[0].legend(loc="best")
    points = [(r["iteration"], r["kl"]) for r in rows if r.get("kl") is not None]
    if points:
        axes[1].plot(*zip(*points), marker=".", color="tab:red")
        axes[1].set_ylabel("KL to the base model")


def plot_confusion(confusion: dict[str, dict[str, int]], out: str | Path, title: str = "") -> Path:
    """A confusion matrix (rows: true category, columns: predicted) as a PNG heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(confusion)
    counts = np.asarray([[confusion[t].get(p, 0) for p in labels] for t in labels])
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2, 1.0 * len(labels) + 1.5))
    ax.imshow(counts, cmap="Blues")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center",
                    color="white" if counts[i, j] > counts.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("first pass says")
    ax.set_ylabel("true category")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, out)


def plot_transfer(experts: dict[str, dict[str, np.ndarray]], out: str | Path, title: str = "") -> Path:
    """z along the (descending) singular-value index for a few matrices: the source expert, its
    ordered transfer and its shuffled control. Ranks are drawn on [0, 1] so models of different
    widths share an axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({_kind_of(n) for n in experts["source"]})
    fig, axes = plt.subplots(len(kinds), 1, figsize=(8, 2.6 * len(kinds)), squeeze=False)
    for ax, kind in zip(axes[:, 0], kinds):
        for label, vectors in experts.items():
            names = sorted((n for n in vectors if _kind_of(n) == kind), key=_layer_of)
            name = names[len(names) // 2]  # the middle layer
            z = vectors[name]
            ax.plot(np.linspace(0, 1, len(z)), z, lw=0.8, label=f"{label} ({name.split('.')[2]})")
        ax.set_ylabel(f"z, {kind}")
        ax.legend(loc="upper right", fontsize="small")
    axes[-1, 0].set_xlabel("singular-value rank (0 = largest), relative")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, out)


def _kind_of(name: str) -> str:
    return name.rsplit(".", 2)[-2]


def _layer_of(name: str) -> int:
    digits = [p for p in name.split(".") if p.isdigit()]
    return int(digits[0]) if digits else 0


def _save(fig, out: str | Path) -> Path:
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with landing(out) as fh:
            fig.savefig(fh, format="png", dpi=110)
    finally:
        plt.close(fig)  # pyplot keeps every open figure alive otherwise
    return out
