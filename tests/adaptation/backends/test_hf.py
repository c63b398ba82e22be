"""The transformers backend on a tiny real model with a real tokenizer."""

import json

import pytest
import torch

from t2reg.adaptation import ExpertPatch
from t2reg.adaptation.backends import backend_names, open_backend
from t2reg.adaptation.models.files import matrix_loader
from t2reg.architectures import matrix_specs
from t2reg.errors import UnknownNameError
from t2reg.spectra import Spectra, decompose
from tests.helpers.backend_calls import generate, loglikelihood
from tests.helpers.tiny_tokenizer import save_model_with_tokenizer

PROMPTS = ["Question: what do plants need?", "Solve the following math problem", "The answer is", "(A) light (B)"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_model_with_tokenizer(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def backend(model_dir):
    return open_backend("hf", model_dir, batch_size=3)


@pytest.fixture(scope="module")
def spectra(model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("spectra")
    decompose(matrix_specs(json.loads((model_dir / "config.json").read_text()), "mlp"), matrix_loader(model_dir), root,
              model="tiny")
    return Spectra.load(root)


def test_registered_backends_and_unknown_ones():
    assert "hf" in backend_names()
    with pytest.raises(UnknownNameError, match="unknown backend 'nope'"):
        open_backend("nope", None)


def test_batched_left_padded_generation_equals_one_by_one(backend):
    batched = generate(backend, PROMPTS, 8)
    single = [generate(backend, [p], 8)[0] for p in PROMPTS]
    assert batched == single and all(isinstance(t, str) for t in batched)
    assert generate(backend, PROMPTS, 8) == batched  # greedy: deterministic


def test_stop_strings_cut_the_output(backend):
    free = generate(backend, PROMPTS[:1], 12)[0]
    assert len(free) > 2
    stop = free[1:3]
    cut = generate(backend, PROMPTS[:1], 12, stop=[stop])[0]
    assert stop not in cut and free.startswith(cut) and len(cut) < len(free)


def _alone(backend, context, continuation):
    """The continuation's log-probability from one plain forward pass over context + continuation."""
    ctx, cont = backend.split_continuation(context, continuation)
    with torch.no_grad():
        logits = backend.model(input_ids=torch.tensor([ctx + cont])).logits[0].float()
    logprobs = torch.log_softmax(logits, -1)
    return float(sum(logprobs[len(ctx) - 1 + j, token] for j, token in enumerate(cont)))


QUESTIONS = [("Question: what do plants need to grow?\nAnswer:", [" light", " water and soil", " a very long answer"]),
             ("Question: which is a metal?\nAnswer:", [" iron", " wood", " glass bottles", " salt"]),
             ("The answer is (", ["A", "B", "C"])]


@pytest.mark.parametrize("architecture", ["LlamaForCausalLM", "GPT2LMHeadModel", "Gemma3ForCausalLM",
                                          "Qwen2ForCausalLM", "Phi3ForCausalLM"])
def test_a_shared_prefix_scores_every_option_as_a_full_forward_pass_does(architecture, tmp_path):
    backend = open_backend("hf", save_model_with_tokenizer(tmp_path / "m", architecture, initializer_range=0.3),
                          batch_size=2)  # groups split across batches, options of one context in one
    requests = [(context, option) for context, options in QUESTIONS for option in options]
    shared = loglikelihood(backend, requests)
    assert shared == pytest.approx([_alone(backend, c, k) for c, k in requests], abs=1e-4)
    assert len({round(v, 3) for v in shared}) == len(requests)  # the options really differ


@pytest.mark.parametrize("architecture, opens_with_bos", [("Gemma3ForCausalLM", True), ("LlamaForCausalLM", False)])
def test_a_context_opens_with_bos_only_for_families_that_need_it(architecture, opens_with_bos, tmp_path):
    backend = open_backend("hf", save_model_with_tokenizer(tmp_path / "m", architecture), batch_size=2)
    bos, plain = backend.tokenizer.bos_token_id, backend.tokenizer("Question: what?\nAnswer:", add_special_tokens=False)
    ctx, cont = backend.split_continuation("Question: what?\nAnswer:", " light")
    assert ctx == ([bos] if opens_with_bos else []) + plain.input_ids
    assert cont == backend.tokenizer(" light", add_special_tokens=False).input_ids
    templated, _ = backend.split_continuation(backend.tokenizer.bos_token + "Question: what?", " light")
    assert templated.count(bos) == 1  # a chat template's own <bos> is not doubled


def test_set_weights_and_restore(backend):
    name = "model.layers.0.mlp.up_proj.weight"
    before = backend.model.get_parameter(name).detach().clone()
    backend.set_weights({name: torch.zeros_like(before)})
    assert torch.count_nonzero(backend.model.get_parameter(name)) == 0
    backend.restore()
    assert torch.equal(backend.model.get_parameter(name), before)


def test_patched_backend_equals_expert_patch(backend, spectra):
    z = {n: torch.rand(spectra[n].S.shape[0], generator=torch.Generator().manual_seed(1)) + 0.5 for n in spectra.names()}
    generic = type(backend).__mro__[1].patched  # the Backend base class's set_weights route
    with generic(backend, spectra, z):
        via_set_weights = loglikelihood(backend, [("The answer is (", "A")])
    with ExpertPatch(backend.model, spectra, z):
        via_patch = loglikelihood(backend, [("The answer is (", "A")])
    with backend.patched(spectra, z):
        via_backend = loglikelihood(backend, [("The answer is (", "A")])
    assert via_set_weights == pytest.approx(via_patch, abs=1e-5) == via_backend
    assert loglikelihood(backend, [("The answer is (", "A")]) != pytest.approx(via_patch, abs=1e-6)


@pytest.mark.parametrize("architecture", ["LlamaForCausalLM", "GPT2LMHeadModel"])
def test_a_continuation_scores_the_same_alone_and_padded_in_a_batch(architecture, tmp_path):
    # GPT-2's positions are absolute, so this also checks that padding does not shift them
    backend = open_backend("hf", save_model_with_tokenizer(tmp_path / "m", architecture, initializer_range=0.3),
                          batch_size=4)
    requests = [("Question: what do plants need to grow well?", " light and water"), ("The answer", " is B"),
                ("Solve", " the following math problem now")]
    batched = loglikelihood(backend, requests)
    alone = [loglikelihood(backend, [r])[0] for r in requests]
    assert batched == pytest.approx(alone, abs=1e-4)
    assert len(set(round(v, 3) for v in batched)) == 3 and all(v < 0 for v in batched)


def test_shared_prefix_gradients_equal_those_of_full_sequences(tmp_path):
    """What training relies on: with replacement weights, the shared-prefix path gives the same values and
    the same gradients as running every context + continuation on its own."""
    backend = open_backend("hf", save_model_with_tokenizer(tmp_path / "m", initializer_range=0.3), batch_size=2)
    name = "model.layers.0.mlp.up_proj.weight"
    pairs = [backend.split_continuation(c, k) for c, options in QUESTIONS[:2] for k in options]
    grads, values = [], []
    for shared in (True, False):
        weight = backend.model.get_parameter(name).detach().clone().requires_grad_(True)
        if shared:
            per_token = backend.continuation_logprobs(pairs, {name: weight})
        else:
            per_token = []
            for ctx, cont in pairs:
                ids, mask = backend.pad([ctx + cont])
                logprobs = torch.log_softmax(backend.logits(ids, mask, 0, {name: weight})[0], -1)
                per_token.append(logprobs[torch.arange(len(ctx) - 1, len(ctx) + len(cont) - 1), torch.tensor(cont)])
        total = sum(t.sum() for t in per_token)
        total.backward()
        values.append([float(t.detach().sum()) for t in per_token])
        grads.append(weight.grad)
    assert values[0] == pytest.approx(values[1], abs=1e-4)
    assert torch.allclose(grads[0], grads[1], atol=1e-4) and grads[0].abs().sum() > 0


def test_bfloat16_runs_the_body_narrow_and_the_output_projection_and_log_softmax_in_float32(model_dir):
    wide = open_backend("hf", model_dir, batch_size=3)
    narrow = open_backend("hf", model_dir, dtype="bfloat16", batch_size=3)
    assert (wide.dtype, narrow.dtype) == ("float32", "bfloat16")
    assert narrow.model.get_parameter("model.layers.0.mlp.up_proj.weight").dtype == torch.bfloat16
    assert narrow.model.get_output_embeddings().weight.dtype == torch.float32
    ids, mask = narrow.encode(PROMPTS)
    assert narrow.logits(ids, mask, keep=1).dtype == torch.float32
    requests = [(context, option) for context, options in QUESTIONS for option in options]
    assert loglikelihood(narrow, requests) == pytest.approx(loglikelihood(wide, requests), abs=0.05)
