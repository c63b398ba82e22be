"""The job page's mixture panel, drawn as `t2reg jobs plot` draws it (views.job_panels on a real registry's jobs)."""

from t2reg.cli.ui.views import job_panels

COMPONENTS = {"components": ["arc-smol:1", "gsm-smol:1"]}


def _mixture_series(registry, spec, alphas):
    claim, job = registry.jobs.submit_claimed("adapt", {"task": "arc-easy", "model": "tiny", **spec}, "test-worker")
    for i, alpha in enumerate(alphas, 1):
        registry.jobs.checkpoint(claim, COMPONENTS, {"iteration": i, "best": [0.5, -1.0], "best_alpha": alpha})
    job = registry.jobs.get(job.id)
    panels = {p.title: p for p in job_panels(job, registry.jobs.events(job.id))}
    return {s.label: s.points for s in panels["mixture"].series}


def test_the_strength_space_draws_its_last_coordinate_as_the_strength(sqlite_registry):
    series = _mixture_series(sqlite_registry, {"mix_space": "strength"}, [[1.0, 0.25], [1.0, 0.3]])
    assert series == {"arc-smol:1": ((1.0, 1.0), (2.0, 1.0)), "strength s / 3": ((1.0, 0.25), (2.0, 0.3))}


def test_a_per_matrix_search_draws_each_experts_mean_weight(sqlite_registry):
    # two experts over three matrices each: six weights a generation, one line per expert
    series = _mixture_series(sqlite_registry, {"per_matrix": True}, [[0.6, 0.7, 0.8, 0.1, 0.2, 0.3]])
    assert list(series) == ["arc-smol:1", "gsm-smol:1"]
    assert abs(series["arc-smol:1"][0][1] - 0.7) < 1e-12 and abs(series["gsm-smol:1"][0][1] - 0.2) < 1e-12
