"""Projection transfer on tiny real models: onto itself it gives the expert back; across families it runs,
publishes with its lineage, is reused, shares its cached moments with its control, and says how it fitted."""

import shutil

import numpy as np

from t2reg.adaptation.crossmodel.publishing import carry
from t2reg.adaptation.crossmodel.projection import MomentCache
from t2reg.adaptation.crossmodel.spec import TransferSpec
from t2reg.enums import Relation, Source
from tests.adaptation.crossmodel.conftest import effective
from tests.helpers.data import DATA

REF = "arc-easy-tiny:1"


def _spec(target: str, **changes) -> TransferSpec:
    return TransferSpec(target, ref=REF, method="projection", n_texts=150, data_dir=str(DATA), **changes)


def test_projecting_a_model_onto_itself_gives_the_expert_back(two_families):
    registry = two_families
    result = carry(registry, _spec("tiny"), REF)
    source = effective(registry, REF)
    assert set(result.vectors) == set(source)
    for name, z in source.items():
        moved, wanted = result.vectors[name] - 1, z - 1
        assert np.corrcoef(moved, wanted)[0, 1] > 0.99, name
        assert np.abs(moved - wanted).max() < 0.05 * np.abs(wanted).max() + 0.01, name
    summary = result.report.summary()
    assert summary["median_r2_heldout"] > 0.99 and summary["median_expressible_share"] > 0.99
    version = result.version
    assert version.source == Source.TRANSFERRED and version.renormalize == "none"
    assert version.ref == "arc-easy-tiny--to-tiny--projection:1"


def test_across_families_it_publishes_with_lineage_and_is_reused(two_families):
    registry = two_families
    first = carry(registry, _spec("other"), REF)
    edge = first.version.lineage[0]
    assert edge.relation == Relation.TRANSFERRED_FROM and edge.parent == REF
    params = edge.params
    assert params["method"] == "projection" and params["texts"] == "task:arc-easy:train" and params["n_texts"] == 150
    assert len(params["texts_sha256"]) == 64 and params["source_model"] != params["target_model"]
    fits = first.report.fits
    assert len(fits) == 6 and all(f.positions > 500 for f in fits)  # both tokenizers share many token ends
    assert all(-1 <= f.r2_heldout <= 1 and 0 <= f.expressible_share <= 1 for f in fits)
    assert any("projection on 150 texts" in line for line in first.report.lines())
    again = carry(registry, _spec("other"), REF)
    assert again.reused and again.version.ref == first.version.ref


def test_the_control_reuses_the_moments_and_carries_less(two_families, tmp_path):
    registry = two_families
    real = carry(registry, _spec("other"), REF)  # made (or reused) above: its moments are cached
    # Take the source model's weights away: the control must come from the cache, not from running models.
    location = registry.get_model("tiny").location
    shutil.move(location, tmp_path / "away")
    try:
        control = carry(registry, _spec("other", baseline="shuffled"), REF)
    finally:
        shutil.move(tmp_path / "away", location)
    assert control.version.source == Source.TRANSFERRED_SHUFFLED
    assert control.version.ref == "arc-easy-tiny--to-other--projection--shuffled:1"
    assert control.report.summary()["median_r2_heldout"] < real.report.summary()["median_r2_heldout"]
    folders = list((registry.settings.home / "cache" / "projection").iterdir())
    assert folders and all((f / "moments.safetensors").is_file() and not (f / "partial.safetensors").exists()
                           for f in folders)


def test_a_partial_collection_continues_where_it_stopped(two_families):
    from t2reg.adaptation.crossmodel import projection as proj
    from t2reg.adaptation.crossmodel.texts import task_texts
    from t2reg.adaptation.tasks import get_task
    from t2reg.transfer.layout import Layout

    registry = two_families
    layouts = [Layout.from_config(m, registry.model_config(m)) for m in ("tiny", "other")]
    pairs = proj.pairs_for(*layouts, {"gate", "up", "down"})
    texts = task_texts(get_task("arc-easy"), "train", 40, 3, DATA)
    whole = proj.collect(registry, "tiny", "other", pairs, texts)
    cache = MomentCache(registry, proj._key(registry, "tiny", "other", pairs, texts))
    cache.done.unlink()
    # a run that stopped after 16 texts left only the moments of those behind
    first16 = proj.Texts(texts.source, texts.items[:16], texts.seed)
    partial = proj.collect(registry, "tiny", "other", pairs, first16)
    cache.save(partial, 16, final=False)
    resumed = proj.collect(registry, "tiny", "other", pairs, texts)
    for name, pm in whole.items():
        assert resumed[name].fit.n == pm.fit.n and np.allclose(resumed[name].fit.cb, pm.fit.cb)
        assert np.allclose(resumed[name].heldout.bb, pm.heldout.bb)
