"""The scheduler thread on a tiny real model: requests for different experts share batches and each gets the
answer it gets alone (and the one rewritten weights give); reloads, cancellations and failures leave the
scheduler serving."""

import json
import threading

import pytest

from t2reg.adaptation.backends import GenerationRequest, Sampling, open_backend
from t2reg.adaptation.models.files import matrix_loader
from t2reg.adaptation.serving.scheduler import (
    BusyError,
    Delta,
    FactoredScheduler,
    Failed,
    Finished,
    GroupedScheduler,
    Completion,
    OverBudgetError,
    StoppedError,
    make_scheduler,
)
from t2reg.architectures import matrix_specs
from t2reg.errors import InvalidInputError
from t2reg.expert_file import ExpertMeta, constant_expert
from t2reg.spectra import Spectra, decompose
from tests.helpers.backend_calls import loglikelihood
from tests.helpers.tiny_tokenizer import save_model_with_tokenizer

PROMPTS = ["Answer the following question.\n\n", "Solve", "Question: what do plants need? (A) light", "The answer is"]
TIMEOUT = 120


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    model_dir = save_model_with_tokenizer(tmp_path_factory.mktemp("tiny") / "model", seed=0, initializer_range=0.3)
    root = tmp_path_factory.mktemp("spectra")
    decompose(matrix_specs(json.loads((model_dir / "config.json").read_text()), "mlp"), matrix_loader(model_dir), root,
              model="tiny")
    spectra = Spectra.load(root)
    ranks = {n: spectra[n].S.shape[0] for n in spectra.names()}
    experts = {f"e{i}:1": constant_expert(ranks, ExpertMeta("tiny", renormalize=rule), noise=0.5, seed=i)
               for i, rule in enumerate(["nuclear", "none", "nuclear"])}
    return model_dir, spectra, experts


@pytest.fixture(scope="module")
def backend(parts):
    return open_backend("hf", parts[0])


@pytest.fixture(scope="module")
def reference(parts):
    """A second copy of the model, for answers computed the way `t2reg run` does (weights rewritten)."""
    return open_backend("hf", parts[0])


class Collector:
    """Gathers one completion's events (the scheduler calls it from its own thread)."""

    def __init__(self):
        self.events, self.done = [], threading.Event()

    def __call__(self, event):
        self.events.append(event)
        if isinstance(event, (Finished, Failed)):
            self.done.set()

    def result(self):
        assert self.done.wait(TIMEOUT), "the completion never ended"
        return self.events[-1]


def completion(scheduler, prompt, expert, max_tokens=10, **options):
    sink = Collector()
    return Completion(scheduler.encode(prompt), expert, max_tokens, sink, prompt=prompt, **options), sink


def run_all(scheduler, specs):
    """Submit (prompt, expert) pairs at once; their Finished events in order."""
    made = [completion(scheduler, p, e) for p, e in specs]
    for j, _ in made:
        scheduler.submit(j)
    return [sink.result() for _, sink in made]


@pytest.fixture
def factored(backend, parts):
    scheduler = FactoredScheduler(backend, parts[1], parts[2], max_batch=8).start()
    yield scheduler
    scheduler.stop()


MIXED = [(p, e) for p in PROMPTS for e in (None, "e0:1", "e1:1", "e2:1")]


def test_requests_for_different_experts_share_batches_and_get_their_answers_alone(factored, reference, parts):
    steps = []
    factored.on_step = steps.append
    together = run_all(factored, MIXED)
    assert all(isinstance(f, Finished) for f in together) and max(steps) > 4  # rows really shared passes
    alone = [run_all(factored, [spec])[0] for spec in MIXED]
    assert [f.text for f in together] == [f.text for f in alone]
    # the same as rewriting the weights for each expert (what `t2reg run` does)
    _, spectra, experts = parts
    for (prompt, expert), finished in zip(MIXED, together):
        request = GenerationRequest(prompt, Sampling(10))
        if expert is None:
            expected = reference.generate([request])[0]
        else:
            with reference.patched(spectra, experts[expert]):
                expected = reference.generate([request])[0]
        assert finished.text == expected, (prompt, expert)
    per_prompt = [{f.text for f, (p, _) in zip(together, MIXED) if p == prompt} for prompt in PROMPTS]
    assert all(len(texts) > 1 for texts in per_prompt)  # the experts change the answers
    assert {f.reason for f in together} <= {"stop", "length"}
    assert all(f.prompt_tokens > 0 and 0 < f.completion_tokens <= 10 for f in together)


def test_streaming_deltas_add_up_and_stop_strings_cut(factored):
    whole = run_all(factored, [(PROMPTS[3], "e0:1")])[0].text
    streamed, sink = completion(factored, PROMPTS[3], "e0:1", stream=True)
    factored.submit(streamed)
    finished = sink.result()
    assert "".join(e.text for e in sink.events if isinstance(e, Delta)) == finished.text == whole
    stop = whole[len(whole) // 2 : len(whole) // 2 + 2]
    cut, sink = completion(factored, PROMPTS[3], "e0:1", stop=(stop,))
    factored.submit(cut)
    assert sink.result().text == whole[: whole.find(stop)] and sink.result().reason == "stop"


def test_seeded_sampling_is_reproducible_whatever_shares_the_batch(factored):
    def sampled(others):
        mine, sink = completion(factored, PROMPTS[0], "e1:1", temperature=1.0, seed=11)
        rest = [completion(factored, p, None, temperature=1.0) for p in PROMPTS[:others]]
        for j in [mine] + [r[0] for r in rest]:
            factored.submit(j)
        return sink.result().text

    assert sampled(0) == sampled(3)


def test_a_cancelled_completion_frees_its_row(backend, parts):
    scheduler = FactoredScheduler(backend, parts[1], parts[2], max_batch=1).start()
    try:
        # ignore_eos and a long budget: the row is still decoding when the cancel comes, however slow this thread
        long, long_sink = completion(scheduler, PROMPTS[0], "e0:1", max_tokens=5000, stream=True, ignore_eos=True)
        scheduler.submit(long)
        short, short_sink = completion(scheduler, PROMPTS[1], None, max_tokens=3)
        scheduler.submit(short)  # waits: the only row is taken
        while not long_sink.events:
            threading.Event().wait(0.01)
        scheduler.cancel(long)
        assert isinstance(short_sink.result(), Finished)
        assert not any(isinstance(e, (Finished, Failed)) for e in long_sink.events)  # dropped, not finished
        assert scheduler.running == 0
    finally:
        scheduler.stop()


def test_reload_serves_new_experts_and_keeps_the_ones_in_flight(backend, parts):
    _, spectra, experts = parts
    scheduler = FactoredScheduler(backend, spectra, {"e0:1": experts["e0:1"]}, max_batch=4).start()
    try:
        with pytest.raises(InvalidInputError, match="does not hold expert 'e1:1'"):
            scheduler.submit(completion(scheduler, PROMPTS[0], "e1:1")[0])
        before = run_all(scheduler, [(PROMPTS[0], "e0:1")])[0].text
        in_flight, sink = completion(scheduler, PROMPTS[0], "e0:1", max_tokens=10)
        scheduler.submit(in_flight)
        scheduler.reload({"e1:1": experts["e1:1"]}).result(TIMEOUT)
        assert sink.result().text == before  # admitted before the reload, answered with its expert
        assert run_all(scheduler, [(PROMPTS[0], "e1:1")])[0].text == run_all(scheduler, [(PROMPTS[0], "e1:1")])[0].text
        assert set(scheduler.experts) == {"e0:1", "e1:1"}  # kept for the row that was using it
        scheduler.reload({"e1:1": experts["e1:1"]}).result(TIMEOUT)
        assert set(scheduler.experts) == {"e1:1"}  # nothing uses it any more: the next reload lets it go
        with pytest.raises(InvalidInputError):
            scheduler.submit(completion(scheduler, PROMPTS[0], "e0:1")[0])
    finally:
        scheduler.stop()


def test_a_failing_batch_fails_its_completions_and_the_scheduler_goes_on(factored):
    bad, sink = completion(factored, PROMPTS[0], None)
    bad.prompt_ids = [10**6]  # no such token: the embedding lookup raises
    factored.submit(bad)
    assert isinstance(sink.result(), Failed)
    assert isinstance(run_all(factored, [(PROMPTS[1], "e2:1")])[0], Finished)


def test_a_request_the_sampler_refuses_fails_alone_while_the_others_decode(factored):
    expected = run_all(factored, [(PROMPTS[0], "e0:1"), (PROMPTS[1], None)])
    running, running_sink = completion(factored, PROMPTS[0], "e0:1", max_tokens=10, stream=True)
    factored.submit(running)
    while not running_sink.events:  # decoding has begun
        threading.Event().wait(0.005)
    overflow, overflow_sink = completion(factored, PROMPTS[2], "e1:1", temperature=1.0, seed=2**70)  # no int64
    tiny, tiny_sink = completion(factored, PROMPTS[1], None, temperature=1e-300)  # greedy, not a division overflow
    factored.submit(overflow)
    factored.submit(tiny)
    assert isinstance(overflow_sink.result(), Failed) and "Overflow" in str(overflow_sink.result().error)
    assert running_sink.result().text == expected[0].text
    assert tiny_sink.result().text == expected[1].text
    assert isinstance(run_all(factored, [(PROMPTS[3], "e2:1")])[0], Finished)


def test_a_row_whose_logits_are_not_finite_fails_alone(factored, monkeypatch):
    alone = run_all(factored, [(PROMPTS[0], None), (PROMPTS[1], "e0:1")])
    poisoned = factored._variant["e2:1"]
    decoder = factored._decoder

    def nan_for_one_expert(call):  # a numerical fault in that expert's rows alone, at prefill and every step
        def poisoned_call(rows, variants):
            logits = call(rows, variants)
            logits[[i for i, v in enumerate(variants) if v == poisoned]] = float("nan")
            return logits

        return poisoned_call

    monkeypatch.setattr(decoder, "join", nan_for_one_expert(decoder.join))
    monkeypatch.setattr(decoder, "step", nan_for_one_expert(decoder.step))
    together = run_all(factored, [(PROMPTS[0], None), (PROMPTS[2], "e2:1"), (PROMPTS[1], "e0:1")])
    assert isinstance(together[1], Failed) and "not finite" in str(together[1].error)
    assert [together[0].text, together[2].text] == [f.text for f in alone]


def test_a_prompt_that_fails_a_shared_prefill_fails_alone(backend, parts):
    scheduler = FactoredScheduler(backend, parts[1], parts[2], max_batch=8)  # started below: both are prefilled together
    try:
        good, good_sink = completion(scheduler, PROMPTS[1], "e0:1")
        bad, bad_sink = completion(scheduler, PROMPTS[1], None)
        bad.prompt_ids = [10**6] * len(good.prompt_ids)  # no such token: the embedding lookup raises
        scheduler.submit(bad)
        scheduler.submit(good)
        scheduler.start()
        assert isinstance(bad_sink.result(), Failed)
        assert good_sink.result().text == run_all(scheduler, [(PROMPTS[1], "e0:1")])[0].text
    finally:
        scheduler.stop()


def test_the_kv_budget_holds_rows_back_and_refuses_a_request_that_can_never_fit(backend, parts):
    probe = completion(FactoredScheduler(backend, parts[1], {}), PROMPTS[3], None, max_tokens=12)[0]
    scheduler = FactoredScheduler(backend, parts[1], parts[2], max_batch=8, max_kv_tokens=2 * probe.reserve + 1)
    rows = []
    scheduler.on_step = rows.append
    scheduler.start()
    try:
        work = [completion(scheduler, PROMPTS[3], e, max_tokens=12, ignore_eos=True) for e in (None, "e0:1", "e1:1", "e2:1")]
        for j, _ in work:
            scheduler.submit(j)
        answers = [sink.result() for _, sink in work]
        assert max(rows) == 2  # two rows at a time shared the passes, never more
        assert all(isinstance(a, Finished) and a.completion_tokens == 12 for a in answers)
        for (j, _), answer in zip(work, answers):  # each again, alone
            again, sink = completion(scheduler, PROMPTS[3], j.expert, max_tokens=12, ignore_eos=True)
            scheduler.submit(again)
            assert sink.result().text == answer.text
        huge, _ = completion(scheduler, PROMPTS[3], None, max_tokens=2 * probe.reserve)
        with pytest.raises(OverBudgetError, match="holds at most"):
            scheduler.submit(huge)
        assert scheduler.waiting == 0
    finally:
        scheduler.stop()


def test_a_failing_group_fails_alone_and_every_completion_taken_is_answered(backend, parts):
    scheduler = GroupedScheduler(backend, parts[1], parts[2], max_batch=8)  # started below: one step takes both
    try:
        bad, bad_sink = completion(scheduler, PROMPTS[0], "e0:1", temperature=1.0, seed=2**70)  # the backend's seeding raises
        good, good_sink = completion(scheduler, PROMPTS[0], "e1:1")
        scheduler.submit(bad)
        scheduler.submit(good)
        scheduler.start()
        assert isinstance(bad_sink.result(), Failed)
        assert isinstance(good_sink.result(), Finished)
        assert good_sink.result().text == run_all(scheduler, [(PROMPTS[0], "e1:1")])[0].text
    finally:
        scheduler.stop()


def test_scores_run_between_steps_with_the_named_expert(factored, reference, parts):
    pairs = [("The answer is (", "A"), ("The answer is (", "B")]
    base = factored.score(pairs, None).result(TIMEOUT)
    with_expert = factored.score(pairs, "e0:1").result(TIMEOUT)
    with reference.patched(parts[1], parts[2]["e0:1"]):
        expected = loglikelihood(reference, pairs)
    assert with_expert == pytest.approx(expected, abs=1e-3) and with_expert != pytest.approx(base, abs=1e-4)


def test_the_queue_is_bounded_and_a_stopped_scheduler_refuses_work(backend, parts):
    scheduler = FactoredScheduler(backend, parts[1], parts[2], max_batch=1, max_queue=1)  # not started: nothing drains
    scheduler.submit(completion(scheduler, PROMPTS[0], None)[0])
    with pytest.raises(BusyError):
        scheduler.submit(completion(scheduler, PROMPTS[0], None)[0])
    waiting_sink = scheduler._waiting[0].sink
    scheduler.stop()
    assert isinstance(waiting_sink.result(), Failed) and isinstance(waiting_sink.result().error, StoppedError)
    with pytest.raises(StoppedError):
        scheduler.submit(completion(scheduler, PROMPTS[0], None)[0])


def test_the_grouped_scheduler_gives_the_same_answers(backend, parts):
    scheduler = GroupedScheduler(backend, parts[1], parts[2], max_batch=16).start()
    factored = make_scheduler(backend, parts[1], parts[2])
    assert isinstance(factored, FactoredScheduler)
    factored.close()
    try:
        grouped = run_all(scheduler, MIXED)
    finally:
        scheduler.stop()
    reference = FactoredScheduler(backend, parts[1], parts[2], max_batch=16).start()
    try:
        assert [f.text for f in grouped] == [f.text for f in run_all(reference, MIXED)]
    finally:
        reference.stop()
