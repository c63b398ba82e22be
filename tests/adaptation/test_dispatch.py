"""Two-pass dispatch on tiny real models: categories from the pool's experts, the best
expert per category, a classification expert that forces the first pass, one batched
second pass per expert, and the CLI commands."""


import pytest

from t2reg.adaptation.backends import open_backend
from t2reg.adaptation.tasks import Example
from t2reg.adaptation.dispatch import classify, dispatch, dispatch_report, plan_dispatch
from t2reg.adaptation.tasks.dispatch import dispatch_prompt
from t2reg.adaptation.models import weights_dir
from t2reg.adaptation.evaluation.questions import SAMPLE_SEED
from t2reg.adaptation.tasks import CATEGORIES, get_task, sample
from t2reg.cli.context import AppContext
from t2reg.errors import InvalidInputError, NotFoundError
from t2reg.expert_file import write_expert
from tests.helpers.backend_calls import generate
from tests.helpers.data import DATA
from tests.helpers.steering import steered_expert
from tests.cli.test_commands import CLI
from tests.helpers.tiny_tokenizer import save_model_with_tokenizer

QUESTIONS = ["What is 12 times 7?", "Write a function that reverses a list.", "Why do plants need light?",
             "Tell me a joke."]


@pytest.fixture
def pool(tmp_path, capsys):
    save_model_with_tokenizer(tmp_path / "tiny", "LlamaForCausalLM", seed=0, initializer_range=0.3)
    cli = CLI(tmp_path / "home", capsys)
    cli.ok("model", "add", str(tmp_path / "tiny"), "--alias", "tiny")
    cli.ok("model", "decompose", "tiny")
    for name, task, seed, score in (("math-weak", "gsm8k", 1, 0.2), ("math-strong", "gsm8k", 2, 0.6),
                                    ("coder", "mbpp", 3, 0.4), ("reasoner", "arc-easy", 4, 0.5)):
        path = tmp_path / f"{name}.safetensors"
        cli.ok("new-expert", "--model", "tiny", "--task", task, "--noise", "0.2", "--seed", str(seed), "--out", str(path))
        cli.ok("publish", str(path), "--name", name, "--metric", f"{task}:accuracy={score}")
    return cli


def _registry(cli):
    return AppContext(home=cli.base[1]).registry()


def _seen_prompts() -> list[str]:
    """The prompts the tests below route: QUESTIONS and the test questions their evaluations sample."""
    prompts = list(QUESTIONS)
    for name, n in (("arc-easy", 4), ("gsm8k", 2), ("mbpp", 2)):
        task = get_task(name)
        prompts += [task.prompt(ex) for ex in sample(task.examples("test", DATA), n, SAMPLE_SEED)]
    return prompts


def _publish_dispatcher(registry, tmp_path, category):
    """A classification expert steered to answer ``category`` for every prompt these tests route (it is
    the plan that is under test here, not how well a classifier generalises). Steered once per run (the plan
    tests and the serving fixture share it): 20 steps leave the category ahead of every other by 23 to 40
    nats on each prompt (60, as before, gave the same routes); ~13 s on two cores."""
    letter = "ABCD"[CATEGORIES.index(category)]
    examples = [Example(f"d{i}", q, letter, CATEGORIES) for i, q in enumerate(_seen_prompts())]
    expert = steered_expert(registry, "tiny", examples, +1, steps=20, task_name="dispatch")
    return registry.publish(write_expert(expert, tmp_path / "dispatcher.safetensors"), name="dispatcher",
                            tags={"role": "dispatcher"})


def test_categories_come_from_the_pool_and_the_best_expert_wins(pool):
    registry = _registry(pool)
    plan = plan_dispatch(registry, "tiny", "prompt", ["model=tiny"])
    assert {c: v.name for c, v in plan.experts.items()} == {"math": "math-strong", "code": "coder",
                                                               "reasoning": "reasoner"}
    assert plan.categories == ("code", "math", "reasoning", "other")
    narrow = plan_dispatch(registry, "tiny", "prompt", ["task=gsm8k"])
    assert narrow.categories == ("math", "other")
    with pytest.raises(InvalidInputError, match="need a pool of experts"):
        plan_dispatch(registry, "tiny", "prompt", [])
    with pytest.raises(InvalidInputError, match="unknown strategy 'vote'"):
        plan_dispatch(registry, "tiny", "vote", ["model=tiny"])
    with pytest.raises(NotFoundError, match="no classification expert for tiny; train one") as info:
        plan_dispatch(registry, "tiny", "classifier", ["model=tiny"])
    assert info.value.remedy.words() == ("train", "model", "tiny", "task", "dispatch")


def test_the_dispatch_prompt_names_and_explains_only_the_pools_categories():
    text = dispatch_prompt("What is 2 + 2?", ("math", "other"))
    assert "categories: 'math', 'other'." in text and "- math: " in text and "- other: " in text
    assert "code" not in text and "reasoning" not in text


def test_a_fixed_expert_must_be_on_the_model_it_runs_on(pool, tmp_path):
    save_model_with_tokenizer(tmp_path / "other", "MistralForCausalLM", seed=1)
    pool.ok("model", "add", str(tmp_path / "other"), "--alias", "other")
    path = tmp_path / "foreign.safetensors"
    pool.ok("new-expert", "--model", "other", "--task", "gsm8k", "--seed", "5", "--out", str(path))
    pool.ok("publish", str(path), "--name", "foreign")
    registry = _registry(pool)
    assert plan_dispatch(registry, "tiny", "fixed:coder:1").experts["fixed"].name == "coder"
    with pytest.raises(InvalidInputError, match="foreign:1 is an expert for other, not tiny; transfer it first") as info:
        plan_dispatch(registry, "tiny", "fixed:foreign:1")
    assert info.value.remedy.words(lambda option: f"--{option}") == ("transfer", "foreign:1", "--to", "tiny")


def test_a_forced_classifier_routes_everything_to_one_expert_in_one_batched_pass(pool, tmp_path):
    registry = _registry(pool)
    _publish_dispatcher(registry, tmp_path, "math")
    plan = plan_dispatch(registry, "tiny", "classifier", ["model=tiny"])
    assert plan.dispatcher.name == "dispatcher" and "dispatcher" not in {v.name for v in plan.experts.values()}
    backend = open_backend("hf", weights_dir(registry, "tiny"), batch_size=8)
    calls = []
    real_generate = backend.generate
    backend.generate = lambda prompts, *a, **k: calls.append(len(prompts)) or real_generate(prompts, *a, **k)
    assert classify(backend, registry, plan, QUESTIONS) == ["math"] * 4

    def answer(backend, indices):
        return generate(backend, [QUESTIONS[i] for i in indices], 4)

    result = dispatch(backend, registry, plan, QUESTIONS, answer)
    assert result.categories == ["math"] * 4 and result.experts == ["math-strong:1"] * 4
    assert calls == [4]  # the second pass: one batch for the one expert, not one call per prompt
    assert result.first_pass_seconds > 0 and result.second_pass_seconds > 0
    fixed = dispatch(backend, registry, plan_dispatch(registry, "tiny", "fixed:coder:1"), QUESTIONS, answer)
    assert fixed.experts == ["coder:1"] * 4


def test_prompt_strategy_falls_back_to_other_when_the_answer_names_no_category(pool):
    registry = _registry(pool)
    plan = plan_dispatch(registry, "tiny", "prompt", ["model=tiny"])
    backend = open_backend("hf", weights_dir(registry, "tiny"))
    picked = classify(backend, registry, plan, QUESTIONS)
    assert len(picked) == 4 and set(picked) <= set(plan.categories)
    report = dispatch_report(backend, registry, plan, ["gsm8k", "arc-easy"], per_task=3, data_dir=str(DATA))
    assert sum(report.confusion["math"].values()) == 3 and sum(report.confusion["reasoning"].values()) == 3
    assert report.per_task["gsm8k"] == report.confusion["math"] and 0 <= report.accuracy <= 1


def test_cli_run_eval_and_report(pool, tmp_path):
    registry = _registry(pool)
    # "math" is one token of the tiny tokenizer; a category the tokenizer spells in pieces would need a far
    # longer steering run to win the first pass
    _publish_dispatcher(registry, tmp_path, "math")
    out = pool.json("run", "--model", "tiny", "--strategy", "classifier", "--pool", "model=tiny",
                    "--max-new-tokens", "4", *QUESTIONS[:2])
    assert [a["expert"] for a in out["answers"]] == ["math-strong:1", "math-strong:1"]
    scored = pool.json("eval", "--base", "tiny", "--task", "arc-easy", "--limit", "4", "--strategy", "classifier",
                       "--pool", "model=tiny", "--data-dir", str(DATA))
    assert scored["n"] == 4 and scored["routes"] == {"math-strong:1": 4} and scored["second_pass_seconds"] > 0
    assert registry.model_evaluations("tiny", "arc-easy")[-1].source == "two-pass:classifier"
    png = tmp_path / "confusion.png"
    report = pool.json("dispatch-report", "--model", "tiny", "--tasks", "gsm8k,mbpp,arc-easy", "--strategy",
                       "classifier", "--pool", "model=tiny", "--per-task", "2", "--data-dir", str(DATA),
                       "--out", str(png))
    assert report["confusion"]["reasoning"]["math"] == 2 and report["accuracy"] == pytest.approx(2 / 6)
    assert png.read_bytes()[:4] == b"\x89PNG"
    code, _, err = pool("eval", "gsm8k-x:1", "--task", "gsm8k", "--strategy", "prompt")
    assert code == 2 and "use --base MODEL" in err
    code, _, err = pool("eval", "--base", "tiny", "--task", "gsm8k", "--strategy", "prompt", "--pool", "model=tiny",
                        "--detach", "--mode", "letter")
    assert code == 2 and "--detach, --mode cannot be used with --strategy" in err and registry.jobs.list() == []
    code, _, err = pool("eval", "--base", "tiny", "--task", "gsm8k", "--pool", "model=tiny")
    assert code == 2 and "add --strategy or drop --pool" in err
    assert get_task("dispatch").category == "other"
