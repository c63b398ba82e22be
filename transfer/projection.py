"""Functional projection of an expert onto another model's singular basis (no models run here).

Between two families the singular directions of matching matrices do not
correspond, so an expert cannot be carried by index. What does correspond is
what the matrices *do* on the same text. For a target matrix W_t and its
aligned source matrix W_s (same role, nearest layer by relative depth), on
token positions x where both tokenizers end a token at the same character:

* a ridge map M takes the source matrix's outputs W_s a_s(x) to the target's
  W_t a_t(x) (centred, fitted on most positions, its R^2 measured on the rest);
* the expert's effect on the source, ΔW_s a_s(x) with
  ΔW_s = U_s diag(σ_s ⊙ (z_s c_s − 1)) V_sᵀ (c_s its renormalisation), carried
  through M, e_x = M ΔW_s a_s(x), is what the target should do at x;
* the target's own SVF change U_t diag(σ_t ⊙ δ) V_tᵀ is fitted to e_x by least
  squares. Because U_t is orthonormal the fit separates per singular value:
  δ_i = Σ_x c_ix (u_iᵀ e_x) / (σ_i Σ_x c_ix²), with c_ix = v_iᵀ a_t(x).

Everything is expressed in the two matrices' singular coordinates,
b_x = V_sᵀ a_s(x) and c_x = V_tᵀ a_t(x), so the fit needs only their moments
(:class:`Moments`), never the positions themselves: outputs are σ ⊙ b and σ ⊙ c
in the U bases, and M restricted to them is an r_t × r_s matrix K.

The result is ``z_t = clip(1 + δ, 1 − bound, 1 + bound)`` (published with
``renormalize = none``): ``bound`` keeps a direction whose coefficient the
positions barely excite (Σ c_ix² tiny, δ_i huge and meaningless) from
flipping or blowing up its singular value. With the default bound 1, z_t lies
in [0, 2]; :class:`MatrixFit` counts the clipped entries.

Projecting a model onto itself recovers the expert (K ≈ I, δ = z_s c_s − 1):
the first rung of the ladder that tells a broken method from a real limit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch

from t2reg.errors import InvalidInputError

RIDGE_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # relative to the mean source-output energy per direction
DEFAULT_BOUND = 1.0
LOW_SHARE = 0.05  # below this share of ‖e‖² the SVF form cannot express the mapped change: expect nothing


@dataclass
class Moments:
    """Sufficient statistics of one (target matrix, source matrix) pair over a set of positions.

    ``b`` are source coordinates (length r_s), ``c`` target coordinates (length r_t).
    ``cb_mismatched`` pairs every source position with a target position drawn
    from elsewhere in its batch (the control: a map fitted on it holds no
    correspondence).
    """

    n: int
    sum_b: np.ndarray  # (r_s,)
    sum_c: np.ndarray  # (r_t,)
    bb: np.ndarray  # (r_s, r_s)  Σ b bᵀ
    cb: np.ndarray  # (r_t, r_s)  Σ c bᵀ
    cc: np.ndarray  # (r_t,)      Σ c ⊙ c
    cb_mismatched: np.ndarray  # (r_t, r_s)

    @classmethod
    def zeros(cls, r_s: int, r_t: int) -> "Moments":
        return cls(0, np.zeros(r_s), np.zeros(r_t), np.zeros((r_s, r_s)), np.zeros((r_t, r_s)), np.zeros(r_t),
                   np.zeros((r_t, r_s)))

    def add(self, b: np.ndarray, c: np.ndarray, c_mismatched: np.ndarray) -> None:
        """Accumulate positions: rows of ``b`` (n × r_s) and ``c`` (n × r_t) pair up; so do ``b`` and
        ``c_mismatched``."""
        same = c is b  # a matrix paired with itself: Σ c bᵀ is Σ b bᵀ
        # One batch's products in float32 (twice the SIMD width: this is most of a projection's arithmetic),
        # summed over batches in float64, so the rounding of a batch never accumulates across the run. Torch
        # multiplies them: its threads are the ones the models just ran on (numpy's BLAS threads, started
        # beside them, ran these products at a third of their speed).
        b, c, cm = (torch.as_tensor(np.asarray(x, dtype=np.float32)) for x in (b, c, c_mismatched))
        self.n += len(b)
        self.sum_b += b.sum(0, dtype=torch.float64).numpy()
        self.sum_c += c.sum(0, dtype=torch.float64).numpy()
        bb = (b.T @ b).numpy()
        self.bb += bb
        self.cb += bb if same else (c.T @ b).numpy()
        self.cc += (c * c).sum(0, dtype=torch.float64).numpy()
        self.cb_mismatched += (cm.T @ b).numpy()

    def __add__(self, other: "Moments") -> "Moments":
        return Moments(self.n + other.n, self.sum_b + other.sum_b, self.sum_c + other.sum_c, self.bb + other.bb,
                       self.cb + other.cb, self.cc + other.cc, self.cb_mismatched + other.cb_mismatched)

    def arrays(self) -> dict[str, np.ndarray]:
        """The moments as named arrays (for a safetensors file)."""
        return {"n": np.array([self.n], dtype=np.float64), "sum_b": self.sum_b, "sum_c": self.sum_c, "bb": self.bb,
                "cb": self.cb, "cc": self.cc, "cb_mismatched": self.cb_mismatched}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "Moments":
        return cls(int(arrays["n"][0]), *(np.asarray(arrays[k], dtype=np.float64)
                                          for k in ("sum_b", "sum_c", "bb", "cb", "cc", "cb_mismatched")))


@dataclass
class MatrixFit:
    """How one target matrix was fitted: what the report shows per matrix."""

    target: str
    source: str
    positions: int
    ridge: float  # the relative ridge chosen on held-out positions
    r2_heldout: float  # R^2 of M predicting the target's outputs from the source's, on held-out positions
    expressible_share: float  # of ‖e‖², the share the SVF form (diagonal in the target's basis) reproduces
    transmitted: float  # ‖e‖² / ‖ΔW_s a_s‖²: how much of the source's change survives M
    clipped: int  # entries of δ cut to the bound
    mean_abs_delta: float

    def to_dict(self) -> dict:
        return asdict(self)


def project(fit: Moments, heldout: Moments, z_effect: np.ndarray, sigma_s: np.ndarray, sigma_t: np.ndarray, *,
            target: str, source: str, ridge: float | None = None, bound: float = DEFAULT_BOUND,
            mismatched: bool = False) -> tuple[np.ndarray, MatrixFit]:
    """z for the target matrix, and how well it was determined.

    ``z_effect`` is the source expert's effective z (after its renormalisation), ``sigma_*`` the two
    matrices' singular values. ``ridge`` None picks one from :data:`RIDGE_GRID` by held-out R^2;
    ``mismatched`` fits M on the mismatched pairing instead (the control).
    """
    if bound <= 0:
        raise InvalidInputError("{bound} must be positive", options=["bound"])
    if fit.n < 2 or heldout.n < 1:
        raise InvalidInputError(f"{target}: too few aligned positions to fit a map ({fit.n} + {heldout.n})")
    s_s, s_t = np.asarray(sigma_s, np.float64), np.asarray(sigma_t, np.float64)
    grid: Sequence[float] = RIDGE_GRID if ridge is None else (ridge,)
    scored = [(_r2(_map(fit, s_s, s_t, lam, mismatched), heldout, s_s, s_t), lam) for lam in grid]
    r2, lam = max(scored, key=lambda pair: (pair[0], -pair[1]))
    k = _map(fit + heldout, s_s, s_t, lam, mismatched)  # refitted on every position
    everything = fit + heldout
    # e_x in the target's U coordinates: K applied to the source's change in its own U coordinates.
    g = k * ((np.asarray(z_effect, np.float64) - 1.0) * s_s)[None, :]
    numerator = (g * everything.cb).sum(1)  # Σ_x c_ix (G b_x)_i
    cc = np.maximum(everything.cc, 1e-30)
    delta = numerator / (np.maximum(s_t, 1e-30) * cc)
    fitted_energy = float((numerator**2 / cc).sum())
    total_energy = _quadratic(g, everything.bb)
    source_change = (np.asarray(z_effect, np.float64) - 1.0) * s_s
    source_energy = float((source_change**2 * np.diag(everything.bb)).sum())  # Σ_x ‖ΔW_s a_s(x)‖²
    z = np.clip(1.0 + delta, 1.0 - bound, 1.0 + bound)
    report = MatrixFit(target, source, everything.n, lam, r2,
                       fitted_energy / total_energy if total_energy > 0 else 0.0,
                       total_energy / source_energy if source_energy > 0 else 0.0,
                       int(np.sum(np.abs(delta) > bound)), float(np.mean(np.abs(z - 1.0))))
    return z.astype(np.float32), report


def _centred(m: Moments, mismatched: bool) -> tuple[np.ndarray, np.ndarray]:
    mean_b, mean_c = m.sum_b / m.n, m.sum_c / m.n
    bb = m.bb - m.n * np.outer(mean_b, mean_b)
    cb = (m.cb_mismatched if mismatched else m.cb) - m.n * np.outer(mean_c, mean_b)
    return bb, cb


def _map(m: Moments, s_s: np.ndarray, s_t: np.ndarray, ridge: float, mismatched: bool) -> np.ndarray:
    """K = U_tᵀ M U_s: target outputs from source outputs, both in their U coordinates (centred ridge)."""
    bb, cb = _centred(m, mismatched)
    gram = s_s[:, None] * bb * s_s[None, :]  # Σ y_s y_sᵀ
    cross = s_t[:, None] * cb * s_s[None, :]  # Σ y_t y_sᵀ
    lam = ridge * max(float(np.trace(gram)) / len(s_s), 1e-30)
    # K gram = cross, solved as gramᵀ Kᵀ = crossᵀ (gram is symmetric); torch's solver, on the threads the
    # models ran on, takes half numpy's time here
    solved = torch.linalg.solve(torch.from_numpy(gram + lam * np.eye(len(s_s))), torch.from_numpy(cross.T.copy()))
    return solved.numpy().T


def _r2(k: np.ndarray, m: Moments, s_s: np.ndarray, s_t: np.ndarray) -> float:
    """Held-out R^2 of y_t ≈ K y_s (each centred on the held-out positions' own means)."""
    bb, cb = _centred(m, False)
    cc = m.cc - (m.sum_c**2) / m.n
    total = float((s_t**2 * cc).sum())
    if total <= 0:
        return 0.0
    gram = s_s[:, None] * bb * s_s[None, :]
    cross = s_t[:, None] * cb * s_s[None, :]
    residual = total - 2.0 * float((k * cross).sum()) + _quadratic(k, gram)
    return 1.0 - residual / total


def _quadratic(k: np.ndarray, gram: np.ndarray) -> float:
    """Σ_ijl k_ij gram_jl k_il, the trace of K G Kᵀ. Through one matrix product: numpy's einsum over three
    operands runs it as a plain triple loop (0.35 s for a 576-wide matrix, two thirds of a projection)."""
    return float(((k @ gram) * k).sum())


def low_share(fits: Sequence[MatrixFit]) -> bool:
    """Whether the SVF form can express only a few percent of the mapped change (then expect nothing)."""
    if not fits:
        return True
    return float(np.median([f.expressible_share for f in fits])) < LOW_SHARE


@dataclass
class ProjectionReport:
    """A projection transfer: its settings, the texts, and every matrix's fit."""

    source_model: str
    target_model: str
    baseline: str
    seed: int | None
    settings: dict
    texts: dict
    fits: list[MatrixFit]
    notes: list[str]

    def options(self) -> dict:
        """What identifies this transfer: recorded on the lineage row."""
        return {"method": "projection", "baseline": self.baseline, "seed": self.seed, **self.settings, **self.texts}

    def summary(self) -> dict:
        def median(key: str) -> float:
            return float(np.median([getattr(f, key) for f in self.fits])) if self.fits else 0.0

        return {"matrices": len(self.fits), "median_r2_heldout": median("r2_heldout"),
                "median_expressible_share": median("expressible_share"), "median_transmitted": median("transmitted"),
                "clipped": int(sum(f.clipped for f in self.fits)), "mean_abs_delta": median("mean_abs_delta")}

    def to_dict(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "fits"}, "summary": self.summary(),
                "fits": [f.to_dict() for f in self.fits]}

    def lines(self):
        s = self.summary()
        yield (f"{self.source_model} -> {self.target_model}: projection on {self.texts['n_texts']} texts "
               f"({self.texts['texts']}), baseline {self.baseline}")
        yield (f"{s['matrices']} matrices: median held-out R^2 of the map {s['median_r2_heldout']:.3f}, median "
               f"expressible share {s['median_expressible_share']:.3f}, median transmitted "
               f"{s['median_transmitted']:.3f}, mean |z-1| {s['mean_abs_delta']:.4f}, {s['clipped']} entries clipped")
        yield "MATRIX                                   POSITIONS  RIDGE   R2     SHARE  |z-1|"
        for f in self.fits:
            yield (f"{f.target[:40]:<40} {f.positions:>9}  {f.ridge:<6.0e}  {f.r2_heldout:+.3f} {f.expressible_share:.3f}"
                   f"  {f.mean_abs_delta:.4f}")
        for note in self.notes:
            yield f"note: {note}"


def report_notes(fits: Sequence[MatrixFit]) -> list[str]:
    notes = []
    if low_share(fits):
        notes.append(f"the SVF form expresses a median {np.median([f.expressible_share for f in fits]):.1%} of the "
                     "mapped change (under 5 %): expect no measurable effect on the target")
    weak = [f for f in fits if f.r2_heldout < 0.1]
    if weak:
        notes.append(f"{len(weak)} of {len(fits)} maps explain under 10 % of held-out target outputs: the "
                     "correspondence itself is weak there")
    return notes
