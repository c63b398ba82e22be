"""What a transfer can carry: vectors flat along the rank axis are flagged, profiles with a trend are not."""

import numpy as np

from t2reg.transfer import Layout, transfer
from t2reg.transfer.diagnostics import FLAT_R2, rank_profile
from t2reg.builtin_models import BUILTIN_MODELS


def test_noise_is_flat_and_a_trend_is_not_at_any_length():
    rng = np.random.default_rng(0)
    for n in (64, 576, 1536):
        flat = rank_profile({"m": rng.uniform(0.4, 0.6, n)})
        trend = rank_profile({"m": np.linspace(0.2, 0.8, n) + rng.normal(0, 0.05, n)})
        assert flat.smooth_r2 < FLAT_R2 and not flat.carries_order and flat.flat == 1
        assert trend.smooth_r2 > 0.8 and trend.spearman > 0.9 and trend.carries_order
    assert rank_profile({"constant": np.ones(10)}).smooth_r2 == 0.0


def test_the_transfer_report_carries_the_profile_and_warns_when_order_cannot_matter():
    rng = np.random.default_rng(1)
    source = Layout.from_config("smol", BUILTIN_MODELS["smollm2-135m"].config)
    target = Layout.from_config("gemma", BUILTIN_MODELS["gemma3-270m"].config)
    mlp = [s for s in source.matrices.values() if s.role in ("gate", "up", "down")]
    noise = {s.name: rng.uniform(0.4, 0.6, s.rank).astype(np.float32) for s in mlp}
    _, report = transfer(noise, source, target)
    assert report.rank_profile["carries_order"] is False
    assert any("must coincide" in note for note in report.notes)
    profile = {s.name: np.linspace(0.3, 0.9, s.rank).astype(np.float32) for s in mlp}
    _, report = transfer(profile, source, target)
    assert report.rank_profile["carries_order"] and not any("must coincide" in n for n in report.notes)
    assert any(line.startswith("rank profile of the source") for line in report.lines())
