"""Views on a real registry: the job page's mixture panel, drawn as `t2reg jobs plot` draws it; a version
page's cost in queries."""

from t2reg.cli.ui.views import job_panels, version_page
from t2reg.expert_file import Metric
from t2reg.protocols import Protocol
from t2reg.question_results import dumps_results
from tests.helpers.experts import make_expert, write
from tests.helpers.queries import statements

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
_RESULTS = dumps_results([{"id": f"q{i}", "prediction": "A", "answer": "AB"[i % 2], "correct": i % 2 == 0, "logprob": -1.0,
                           "option_logprobs": [-1.0, -2.0]} for i in range(4)])

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


def test_a_version_page_costs_the_same_queries_however_many_protocols_scored_it(sqlite_registry, tmp_path):
    registry = sqlite_registry
    shapes = registry.model_shapes("smollm2-135m")
    refs = [registry.publish(write(make_expert(shapes, SMOL, seed=i), tmp_path / f"e{i}.safetensors"),
                             name=f"e{i}", task="arc-easy").ref for i in range(2)]
    for i, ref in enumerate(refs):
        for seed in range(2 + 6 * i):  # two protocols for the first version, eight for the second
            protocol = Protocol("arc-easy", "test", "cloze", "v1", n=50, sample_seed=seed)
            registry.record(ref, [Metric("arc-easy", "accuracy", 0.5, "test", 50)], protocol=protocol,
                            results=_RESULTS)
    costs = []
    for ref, protocols in zip(refs, (2, 8)):
        name, version = ref.split(":")
        with statements(registry) as seen:
            page = version_page(registry, name, int(version))
        assert len(page.protocols) == protocols
        assert all(line.baseline is not None for p in page.protocols for line in p.scores)
        costs.append(len(seen))
    assert costs[0] == costs[1]
