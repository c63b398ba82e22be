"""Population evaluation: one batched pass with per-row mixtures in factored form
scores every candidate as rewriting the weights once per candidate does."""

import json

import pytest
import torch

from t2reg.adaptation.backends import open_backend
from t2reg.adaptation.evaluation.scoring import evaluate, evaluate_population
from t2reg.adaptation.patching import FactoredPopulation
from t2reg.adaptation.tasks import get_task
from t2reg.adaptation.models.files import matrix_loader
from t2reg.architectures import matrix_specs
from t2reg.errors import InvalidInputError
from t2reg.spectra import Spectra, decompose
from tests.helpers.backend_calls import loglikelihood
from tests.helpers.data import DATA
from tests.helpers.tiny_tokenizer import save_model_with_tokenizer

# Logits of a tiny float32 model: the factored and rewritten paths differ by the
# spectra's reconstruction error and summation order, ~1e-5.
LOGPROB_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model_dir = save_model_with_tokenizer(tmp_path_factory.mktemp("tiny") / "model")
    root = tmp_path_factory.mktemp("spectra")
    decompose(matrix_specs(json.loads((model_dir / "config.json").read_text()), "mlp"), matrix_loader(model_dir), root,
              model="tiny")
    spectra = Spectra.load(root)
    generator = torch.Generator().manual_seed(0)
    mixtures = [{name: 1 + 0.8 * torch.randn(spectra[name].S.shape, generator=generator) for name in spectra.names()}
                for _ in range(4)]
    mixtures.append({})  # a candidate that changes nothing
    return open_backend("hf", model_dir, batch_size=8), spectra, mixtures


def _sequential(backend, spectra, mixtures, task, examples, **options):
    results = []
    for mixture in mixtures:
        with backend.patched(spectra, mixture, "nuclear"):
            results.append(evaluate(backend, task, examples, **options))
    return results


@pytest.mark.parametrize("mode", ["cloze", "letter"])
def test_choice_scores_match_the_sequential_path(setup, mode):
    backend, spectra, mixtures = setup
    task = get_task("arc-easy")
    examples = task.shots(6, 0, DATA)
    batched = evaluate_population(backend, task, examples, spectra, mixtures, mode=mode)
    sequential = _sequential(backend, spectra, mixtures, task, examples, mode=mode)
    for b, s in zip(batched, sequential):
        assert b.n == s.n == 6 and b.mode == s.mode == mode
        assert [o["prediction"] for o in b.outputs] == [o["prediction"] for o in s.outputs]
        assert b.mean_correct_logprob == pytest.approx(s.mean_correct_logprob, abs=LOGPROB_TOLERANCE)
        for ob, os_ in zip(b.outputs, s.outputs):
            assert ob["option_logprobs"] == pytest.approx(os_["option_logprobs"], abs=LOGPROB_TOLERANCE)
    # the candidates really differ from each other, so rows did not share one mixture
    assert len({round(r.mean_correct_logprob, 4) for r in batched}) == len(mixtures)


def test_generation_outputs_match_the_sequential_path(setup):
    backend, spectra, mixtures = setup
    task = get_task("gsm8k")
    examples = task.shots(3, 0, DATA)
    batched = evaluate_population(backend, task, examples, spectra, mixtures, reference_logprob=True)
    sequential = _sequential(backend, spectra, mixtures, task, examples, reference_logprob=True)
    assert [[o["output"] for o in r.outputs] for r in batched] == [[o["output"] for o in r.outputs] for r in sequential]
    assert [r.score for r in batched] == [r.score for r in sequential]
    # generation's tie-breaker: the reference answer's mean per-token log-probability, alike on both paths
    for b, s in zip(batched, sequential):
        assert b.mean_correct_logprob < 0
        assert b.mean_correct_logprob == pytest.approx(s.mean_correct_logprob, abs=LOGPROB_TOLERANCE)
    assert len({round(r.mean_correct_logprob, 4) for r in batched}) == len(mixtures)
    # only when asked: it costs a pass
    assert evaluate(backend, task, examples, reference_logprob=False).mean_correct_logprob is None


def test_hooks_are_removed_and_rows_are_required(setup):
    backend, spectra, mixtures = setup
    before = loglikelihood(backend, [("The answer is (", "A")])
    with pytest.raises(InvalidInputError, match="names its variant"):
        with backend.population(spectra, mixtures):
            loglikelihood(backend, [("The answer is (", "A")])
    assert loglikelihood(backend, [("The answer is (", "A")]) == before
    with pytest.raises(InvalidInputError, match="outside, none does"):
        loglikelihood(backend, [("The answer is (", "A")], variants=[0])
    with FactoredPopulation(backend.model, spectra, mixtures) as factored, pytest.raises(RuntimeError, match="rows"):
        backend.model(input_ids=torch.tensor([[1, 2, 3]]))
    assert factored.rows is None and not any(m._forward_hooks for m in backend.model.modules())


def test_a_mixture_that_zeroes_a_matrix_is_refused(setup):
    backend, spectra, _ = setup
    name = spectra.names()[0]
    with pytest.raises(InvalidInputError, match="nuclear renormalisation"):
        FactoredPopulation(backend.model, spectra, [{name: torch.zeros_like(spectra[name].S)}])


def test_auto_measures_both_paths_then_keeps_one_with_the_same_scores(setup):
    import numpy as np

    from t2reg.adaptation.search.objective import MixtureScorer

    backend, spectra, mixtures = setup
    task = get_task("arc-easy")
    examples = task.shots(4, 0, DATA)
    population = np.random.default_rng(0).uniform(0, 1, (8, 4))
    auto = MixtureScorer(backend, task, spectra, mixtures[:4], "nuclear", (4,), mode="auto")
    exact = MixtureScorer(backend, task, spectra, mixtures[:4], "nuclear", (4,), mode="sequential")
    got, want = auto.objective(population, examples), exact.objective(population, examples)
    assert auto.mode in ("batched", "sequential") and set(auto.timings) == {"batched", "sequential"}
    assert [g[0] for g in got] == [w[0] for w in want]
    assert [g[1] for g in got] == pytest.approx([w[1] for w in want], abs=LOGPROB_TOLERANCE)
    # zero weights everywhere zero every matrix: ranked last, not an error
    assert auto.objective(np.zeros((2, 4)), examples) == [(float("-inf"), float("-inf"))] * 2


def test_generation_tie_breakers_agree_between_the_scorers_modes(setup):
    import numpy as np

    from t2reg.adaptation.search.objective import MixtureScorer

    backend, spectra, mixtures = setup
    task = get_task("gsm8k")
    examples = task.shots(2, 0, DATA)
    population = np.random.default_rng(1).uniform(0.1, 1, (3, 4))
    batched = MixtureScorer(backend, task, spectra, mixtures[:4], "nuclear", (4,), mode="batched")
    exact = MixtureScorer(backend, task, spectra, mixtures[:4], "nuclear", (4,), mode="sequential")
    got, want = batched.objective(population, examples), exact.objective(population, examples)
    assert [g[0] for g in got] == [w[0] for w in want]
    assert all(w[1] < 0 for w in want) and len({round(w[1], 4) for w in want}) == 3
    assert [g[1] for g in got] == pytest.approx([w[1] for w in want], abs=LOGPROB_TOLERANCE)
