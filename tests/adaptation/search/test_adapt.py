"""Few-shot adaptation end to end on tiny real models: a mixed pool (one expert from
another architecture, transferred first), a known optimum that both optimizers
find, held-out report, publish."""

import numpy as np
import pytest

from t2reg.adaptation.search.adapt import adapt
from t2reg.adaptation.search.spec import AdaptSpec
from t2reg.adaptation.backends import open_backend
from t2reg.adaptation.evaluation.scoring import evaluate
from t2reg.adaptation.models import load_spectra, weights_dir
from t2reg.adaptation.tasks import get_task
from t2reg.cli.context import AppContext
from t2reg.errors import InvalidInputError, NotFoundError
from t2reg.expert_file import write_expert
from tests.helpers.data import DATA
from tests.helpers.steering import steered_expert
from tests.cli.test_commands import CLI
from tests.helpers.tiny_tokenizer import save_model_with_tokenizer


def build_pool(root, capsys):
    """Two tiny models (Llama 'tiny', Mistral 'other') and three noisy experts, one on 'other'."""
    save_model_with_tokenizer(root / "tiny", "LlamaForCausalLM", seed=0)
    save_model_with_tokenizer(root / "other", "MistralForCausalLM", seed=1)
    cli = CLI(root / "home", capsys)
    cli.ok("model", "add", str(root / "tiny"), "--alias", "tiny")
    cli.ok("model", "add", str(root / "other"), "--alias", "other")
    cli.ok("model", "decompose", "tiny")
    for model, task, seed in (("tiny", "gsm8k", 1), ("tiny", "mbpp", 2), ("other", "arc-easy", 3)):
        path = root / f"{model}-{task}.safetensors"
        cli.ok("new-expert", "--model", model, "--task", task, "--noise", "0.2", "--seed", str(seed), "--out", str(path))
        cli.ok("publish", str(path))
    return cli


@pytest.fixture
def pool_registry(tmp_path, capsys):
    return build_pool(tmp_path, capsys)


def _registry(cli):
    return AppContext(home=cli.base[1]).registry()


def test_adapt_mixes_native_and_transferred_experts(pool_registry):
    registry = _registry(pool_registry)
    spec = AdaptSpec("tiny", "arc-easy", ("model=tiny", "model=other"), shots=4, heldout=6, population=4, elite=0.5,
                     iterations=2, data_dir=str(DATA))
    result = adapt(registry, spec)
    v = result.version
    assert v.ref == "arc-easy-tiny-adapted:1" and v.source == "adapted" and v.tags == {"shots": "4"}
    assert sorted(result.components) == ["arc-easy-other--to-tiny:1", "gsm8k-tiny:1", "mbpp-tiny:1"]
    assert sorted(link.parent for link in v.lineage) == sorted(result.components)
    assert all(link.relation == "mixture_component" for link in v.lineage)
    assert len(result.alpha) == 3 and all(0 <= a <= 1 for a in result.alpha)
    assert [(e.metric, e.split, e.n, e.value) for e in v.evaluations] == [
        ("accuracy", "test", 6, result.heldout.score), ("accuracy_norm", "test", 6, result.heldout.score_norm),
        ("logprob", "test", 6, result.heldout.mean_correct_logprob)]
    assert {e.protocol for e in v.evaluations} == {result.heldout.protocol.id}  # a seeded sample of 6, cloze
    assert result.paired.n == 6 and result.paired.accuracy_y == result.heldout.score
    base = {e.metric: e.value for e in registry.model_evaluations("tiny", "arc-easy") if e.n == 6}
    assert base == {"accuracy": result.base.score, "accuracy_norm": result.base.score_norm,
                    "logprob": result.base.mean_correct_logprob}
    assert result.base.mean_correct_logprob < 0
    assert result.state.iteration == 2 and len(result.state.history) == 2 and result.state.evaluations == 8


def test_adapt_per_matrix_through_the_cli(pool_registry):
    out = pool_registry.json("adapt", "--model", "tiny", "--task", "arc-easy", "--pool", "model=tiny", "--shots", "3",
                             "--heldout", "4", "--population", "3", "--iterations", "1", "--per-matrix",
                             "--data-dir", str(DATA))
    assert out["published"] == "arc-easy-tiny-adapted:1" and out["job"] == 1
    assert len(out["alpha"]) == 2 and len(out["alpha"][0]) == 6  # 2 experts x 6 MLP matrices
    assert out["heldout"]["n"] == 4 and out["base"]["n"] == 4


def test_empty_pool_filters_and_bad_settings_are_named(pool_registry):
    registry = _registry(pool_registry)
    with pytest.raises(NotFoundError, match="pool filter 'task=math' matched no live expert"):
        adapt(registry, AdaptSpec("tiny", "arc-easy", ("task=math",), data_dir=str(DATA)))
    with pytest.raises(InvalidInputError, match="asked for 5000 shots"):
        adapt(registry, AdaptSpec("tiny", "arc-easy", ("model=tiny",), shots=5000, data_dir=str(DATA)))
    code, _, err = pool_registry("adapt", "--model", "tiny", "--task", "arc-easy", "--pool", "task=math", "--detach")
    assert code == 3 and "matched no live expert" in err and registry.jobs.list() == []
    code, _, err = pool_registry("adapt", "--model", "tiny", "--task", "arc-easy", "--pool", "model=tiny",
                                 "--optimizer", "adam", "--detach")
    assert code == 3 and "unknown --optimizer 'adam'" in err


# -- a known optimum --------------------------------------------------------------------------------


@pytest.fixture
def known_optimum(tmp_path, capsys):
    save_model_with_tokenizer(tmp_path / "tiny", "LlamaForCausalLM", seed=0)
    cli = CLI(tmp_path / "home", capsys)
    cli.ok("model", "add", str(tmp_path / "tiny"), "--alias", "tiny")
    cli.ok("model", "decompose", "tiny")
    registry = _registry(cli)
    shots = get_task("arc-easy").shots(6, 0, DATA)
    for name, sign in (("helps", 1), ("hurts", -1)):
        path = write_expert(steered_expert(registry, "tiny", shots, sign), tmp_path / f"{name}.safetensors")
        registry.publish(path, name=name)
    return registry


@pytest.mark.parametrize("optimizer", ["cem", "cmaes"])
def test_the_search_finds_the_expert_that_helps(known_optimum, optimizer):
    spec = AdaptSpec("tiny", "arc-easy", ("helps:1", "hurts:1"), shots=6, heldout=4, optimizer=optimizer,
                     population=10, iterations=8, normalize=True, data_dir=str(DATA), population_eval="batched")
    result = adapt(known_optimum, spec)
    helps, hurts = result.alpha  # normalised: they sum to 1
    assert helps == pytest.approx(1 - hurts) and helps > 0.9
    # the batched search's score of its best, re-evaluated with the weights rewritten, agrees
    assert result.best_shot.mean_correct_logprob == pytest.approx(result.state.best_score[1], abs=1e-3)
    base = open_backend("hf", weights_dir(known_optimum, "tiny"))
    base_shot = evaluate(base, get_task("arc-easy"), get_task("arc-easy").shots(6, 0, DATA))
    assert result.best_shot.mean_correct_logprob > base_shot.mean_correct_logprob + 0.5


def test_a_per_matrix_search_finds_the_expert_that_helps(known_optimum):
    spec = AdaptSpec("tiny", "arc-easy", ("helps:1", "hurts:1"), shots=6, heldout=4, population=10, iterations=8,
                     per_matrix=True, normalize=True, data_dir=str(DATA), population_eval="batched")
    result = adapt(known_optimum, spec)
    helps, hurts = np.asarray(result.alpha)  # one weight per matrix each
    assert helps.shape == (6,) and helps.mean() > 0.6 and helps.mean() > hurts.mean()
    base = open_backend("hf", weights_dir(known_optimum, "tiny"))
    base_shot = evaluate(base, get_task("arc-easy"), get_task("arc-easy").shots(6, 0, DATA))
    # accuracy decides first: the best member answers more shots right, and more surely
    assert result.best_shot.score > base_shot.score
    assert result.best_shot.mean_correct_logprob > base_shot.mean_correct_logprob


def test_the_strength_space_can_push_an_expert_past_itself(known_optimum):
    spec = AdaptSpec("tiny", "arc-easy", ("helps:1",), shots=6, heldout=4, population=8, iterations=5,
                     mix_space="strength", data_dir=str(DATA), population_eval="sequential")
    result = adapt(known_optimum, spec)
    assert 1.0 < result.strength <= 3.0  # more of the helpful expert than the expert itself
    v = result.version
    assert v.renormalize == "none" and v.lineage[0].params["mix_space"] == "strength"
    assert v.lineage[0].params["strength"] == pytest.approx(result.strength)
    assert result.state.iteration <= 5 and len(result.state.best_alpha) == 2  # the weight and the strength


def test_the_logit_space_mixes_like_the_reference_code(known_optimum):
    spec = AdaptSpec("tiny", "arc-easy", ("helps:1", "hurts:1"), shots=6, heldout=4, population=6, iterations=2,
                     mix_space="logits", data_dir=str(DATA), population_eval="sequential")
    result = adapt(known_optimum, spec)
    assert result.strength is None and {link.params["mix_space"] for link in result.version.lineage} == {"logits"}
    z = known_optimum.read_expert(result.version.ref).vectors
    assert all(0 < float(v.min()) and float(v.max()) < 1 for v in z.values())  # a sigmoid of mixed logits


def test_nothing_is_scored_twice_members_sharing_a_mixture_the_best_member_and_a_recorded_base(pool_registry):
    registry = _registry(pool_registry)
    # one expert and the strength space: every member whose strength is clamped to 0 is the base model
    common = dict(shots=4, heldout=6, population=8, elite=0.25, iterations=2, init_std=2.0, mix_space="strength",
                  population_eval="sequential", data_dir=str(DATA))
    labels = []
    first = adapt(registry, AdaptSpec("tiny", "arc-easy", ("name=gsm8k-tiny",), name="first", **common),
                  progress=lambda label: labels.append(label) or (lambda batches: batches))
    members = [m["best_alpha"] for m in first.state.history]
    assert labels == ["best mixture, held-out", "base model, held-out"]  # each long phase shows its progress
    assert first.state.evaluations == 16 and len(members) == 2
    bases = [e for e in registry.model_evaluations("tiny", "arc-easy") if e.metric == "accuracy"]
    assert len(bases) == 1
    labels.clear()
    second = adapt(registry, AdaptSpec("tiny", "arc-easy", ("name=gsm8k-tiny",), name="second", seed=1, **common),
                   progress=lambda label: labels.append(label) or (lambda batches: batches))
    assert labels == ["best mixture, held-out"]  # the base model's held-out rows were read back, not scored
    assert [e for e in registry.model_evaluations("tiny", "arc-easy") if e.metric == "accuracy"] == bases
    assert second.base.outputs == first.base.outputs and second.paired.n == 6


def test_members_with_one_mixture_share_one_evaluation_and_a_scored_mixture_is_read_back(pool_registry):
    from t2reg.adaptation.search.objective import MixtureScorer

    registry = _registry(pool_registry)
    examples = get_task("arc-easy").shots(3, 0, DATA)
    vectors = [registry.read_expert("gsm8k-tiny:1").vectors]
    with open_backend("hf", weights_dir(registry, "tiny")) as backend:
        scorer = MixtureScorer(backend, get_task("arc-easy"), load_spectra("tiny", registry), vectors, "nuclear", (1,),
                               mode="sequential", space="strength")
        # strength 0 (the base model) three times, whatever alpha; strength 1.5 twice with different alphas
        population = np.array([[0.5, 0.0], [0.9, 0.0], [0.2, 0.0], [0.5, 0.5], [0.7, 0.5]])
        scores = scorer.objective(population, examples)
        assert scorer.reused == 3 and scores[0] == scores[1] == scores[2] and scores[3] == scores[4]
        assert len(scorer.memo) == 2
        again = scorer.objective(population[:1], examples)
        assert again == scores[:1] and scorer.reused == 4  # an earlier generation's mixture: read back
        best = scorer.score(scorer.candidate(population[3]), examples)
        assert (best.score, best.mean_correct_logprob) == scores[3] and scorer.reused == 5
        plain = evaluate(backend, get_task("arc-easy"), examples)
        assert scores[0] == (plain.score, plain.mean_correct_logprob)  # strength 0 is the base model itself
