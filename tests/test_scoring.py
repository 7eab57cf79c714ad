"""Rank classification and the T-Few loss terms: hand-computed toys, then a tiny T5 on real RTE and CB rows."""

import math

import pytest
import torch
from ia3_helpers import randomize

from tfew.data import read_jsonl
from tfew.errors import TfewError
from tfew.ia3 import add_ia3
from tfew.models import load_seq2seq, load_tokenizer
from tfew.scoring import (
    SCORING_METHODS,
    UNLIKELIHOOD_EPSILON,
    ChoiceBatch,
    choice_scores,
    choice_token_logprobs,
    encode_batch,
    predict,
    tfew_losses,
)

# Token probabilities of a 2-example, 3-choice toy: example 0 has label 1, example 1 has label 0.
TOY = [
    [[0.5, 0.25], [0.8], [0.1, 0.9]],
    [[0.6, 0.5, 0.9], [0.3], [0.3, 0.4]],
]
TOY_LABELS = [1, 0]


def toy_batch(probabilities, labels):
    """A ChoiceBatch and its per-token log-probabilities (zero on padding), built from nested probabilities."""
    rows = [(example, choice, tokens) for example, choices in enumerate(probabilities) for choice, tokens in enumerate(choices)]
    length = max(len(tokens) for _, _, tokens in rows)
    token_logprobs = torch.zeros(len(rows), length, dtype=torch.float64)
    choice_mask = torch.zeros(len(rows), length, dtype=torch.long)
    for row, (_, _, tokens) in enumerate(rows):
        token_logprobs[row, : len(tokens)] = torch.log(torch.tensor(tokens, dtype=torch.float64))
        choice_mask[row, : len(tokens)] = 1
    batch = ChoiceBatch(
        input_ids=torch.zeros(len(probabilities), 1, dtype=torch.long),
        attention_mask=torch.ones(len(probabilities), 1, dtype=torch.long),
        choice_ids=torch.zeros(len(rows), length, dtype=torch.long),
        choice_mask=choice_mask,
        example_of_row=torch.tensor([example for example, _, _ in rows]),
        choice_of_row=torch.tensor([choice for _, choice, _ in rows]),
        num_choices=torch.tensor([len(choices) for choices in probabilities]),
        labels=torch.tensor(labels),
    )
    return batch, token_logprobs


def cross_entropy(scores, label):
    return -scores[label] + math.log(sum(math.exp(score) for score in scores))


def mean_log(tokens):
    return sum(math.log(p) for p in tokens) / len(tokens)


def test_lm_term_by_hand():
    batch, token_logprobs = toy_batch(TOY, TOY_LABELS)
    terms = tfew_losses(token_logprobs, batch, use_ul=False, use_ln=False)
    # Correct choices: [0.8] and [0.6, 0.5, 0.9]; the mean runs over their 4 tokens.
    expected = -(math.log(0.8) + math.log(0.6) + math.log(0.5) + math.log(0.9)) / 4
    assert terms.lm.item() == pytest.approx(expected, abs=1e-12)
    assert terms.ul.item() == 0
    assert terms.ln.item() == 0


def test_ul_term_by_hand():
    batch, token_logprobs = toy_batch(TOY, TOY_LABELS)
    terms = tfew_losses(token_logprobs, batch, use_ul=True, use_ln=False)
    incorrect_tokens = [0.5, 0.25, 0.1, 0.9, 0.3, 0.3, 0.4]
    expected = -sum(math.log(1 - p + 0.01) for p in incorrect_tokens) / len(incorrect_tokens)
    assert UNLIKELIHOOD_EPSILON == 0.01
    assert terms.ul.item() == pytest.approx(expected, abs=1e-12)
    assert terms.ln.item() == 0


def test_ln_term_by_hand():
    batch, token_logprobs = toy_batch(TOY, TOY_LABELS)
    terms = tfew_losses(token_logprobs, batch, use_ul=False, use_ln=True)
    first = [mean_log([0.5, 0.25]), math.log(0.8), mean_log([0.1, 0.9])]
    second = [mean_log([0.6, 0.5, 0.9]), math.log(0.3), mean_log([0.3, 0.4])]
    expected = (cross_entropy(first, 1) + cross_entropy(second, 0)) / 2
    assert terms.ln.item() == pytest.approx(expected, abs=1e-12)
    assert terms.ul.item() == 0


def test_ln_term_without_length_normalisation():
    batch, token_logprobs = toy_batch(TOY, TOY_LABELS)
    terms = tfew_losses(token_logprobs, batch, use_ul=False, use_ln=True, length_normalize=False)
    first = [math.log(0.5 * 0.25), math.log(0.8), math.log(0.1 * 0.9)]
    second = [math.log(0.6 * 0.5 * 0.9), math.log(0.3), math.log(0.3 * 0.4)]
    expected = (cross_entropy(first, 1) + cross_entropy(second, 0)) / 2
    assert terms.ln.item() == pytest.approx(expected, abs=1e-12)


def test_lm_term_switches_off():
    batch, token_logprobs = toy_batch(TOY, TOY_LABELS)
    terms = tfew_losses(token_logprobs, batch, use_lm=False)
    assert terms.lm.item() == 0
    assert terms.total.item() == pytest.approx(terms.ul.item() + terms.ln.item(), abs=1e-12)
    assert terms.ul.item() > 0


def test_total_is_unweighted_sum():
    batch, token_logprobs = toy_batch(TOY, TOY_LABELS)
    terms = tfew_losses(token_logprobs, batch)
    assert terms.total.item() == pytest.approx(terms.lm.item() + terms.ul.item() + terms.ln.item(), abs=1e-12)
    assert terms.ul.item() > 0
    assert terms.ln.item() > 0


def test_length_normalisation_changes_prediction():
    batch, token_logprobs = toy_batch(TOY, TOY_LABELS)
    normalized = choice_scores(token_logprobs, batch, length_normalize=True)
    summed = choice_scores(token_logprobs, batch, length_normalize=False)

    assert normalized[1, 0].item() == pytest.approx(mean_log([0.6, 0.5, 0.9]), abs=1e-12)
    assert summed[1, 0].item() == pytest.approx(math.log(0.6 * 0.5 * 0.9), abs=1e-12)
    # Example 1: three likely tokens beat one unlikely token only per token, not in sum.
    assert predict(normalized).tolist() == [1, 0]
    assert predict(summed).tolist() == [1, 1]


def test_mixed_choice_counts_by_hand():
    probabilities = [TOY[0], TOY[1][:2]]  # 3 choices, then 2 choices
    batch, token_logprobs = toy_batch(probabilities, TOY_LABELS)
    terms = tfew_losses(token_logprobs, batch)
    scores = choice_scores(token_logprobs, batch, length_normalize=True)

    assert scores.shape == (2, 3)
    assert scores[1, 2].item() == float("-inf")
    second = [mean_log([0.6, 0.5, 0.9]), math.log(0.3)]
    first = [mean_log([0.5, 0.25]), math.log(0.8), mean_log([0.1, 0.9])]
    assert terms.ln.item() == pytest.approx((cross_entropy(first, 1) + cross_entropy(second, 0)) / 2, abs=1e-12)
    incorrect_tokens = [0.5, 0.25, 0.1, 0.9, 0.3]
    expected_ul = -sum(math.log(1.01 - p) for p in incorrect_tokens) / len(incorrect_tokens)
    assert terms.ul.item() == pytest.approx(expected_ul, abs=1e-12)


def test_single_choice_example_adds_no_unlikelihood():
    alone, alone_logprobs = toy_batch([TOY[0]], [1])
    with_single, with_single_logprobs = toy_batch([TOY[0], [[0.7, 0.2]]], [1, 0])
    ul_alone = tfew_losses(alone_logprobs, alone).ul
    ul_with_single = tfew_losses(with_single_logprobs, with_single).ul
    assert ul_with_single.item() == pytest.approx(ul_alone.item(), abs=1e-12)


def test_single_choice_batch_is_finite():
    batch, token_logprobs = toy_batch([[[0.7, 0.2]], [[0.4]]], [0, 0])
    token_logprobs.requires_grad_(True)
    terms = tfew_losses(token_logprobs, batch)
    assert terms.ul.item() == 0
    assert terms.ln.item() == pytest.approx(0, abs=1e-12)
    terms.total.backward()
    assert torch.isfinite(token_logprobs.grad).all()


def test_extreme_probabilities_stay_finite():
    # Incorrect choices with probability 1 (the unlikelihood worst case) and a correct choice near 0.
    batch, token_logprobs = toy_batch([[[1.0, 1.0], [1e-30], [1.0]], [[1.0], [1.0]]], [1, 0])
    token_logprobs.requires_grad_(True)
    terms = tfew_losses(token_logprobs, batch)
    for value in (terms.lm, terms.ul, terms.ln, terms.total):
        assert torch.isfinite(value)
    assert terms.ul.item() == pytest.approx(-math.log(UNLIKELIHOOD_EPSILON), abs=1e-9)
    terms.total.backward()
    assert torch.isfinite(token_logprobs.grad).all()


def test_ties_go_to_lowest_choice_index():
    inf = float("inf")
    scores = torch.tensor([
        [-1.0, -0.5, -0.5],  # choices 1 and 2 tie
        [-2.0, -2.0, -inf],  # choices 0 and 1 tie; choice 2 is absent
        [-inf, -3.0, -3.0],
        [-0.25, -0.25, -0.25],
    ])
    assert predict(scores).tolist() == [1, 0, 1, 0]
    assert predict(scores.flip(1)).tolist() == [0, 1, 0, 0]


def test_nan_score_raises():
    with pytest.raises(TfewError, match="NaN"):
        predict(torch.tensor([[0.0, float("nan")]]))


def test_encode_batch_rejects_bad_rows(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    good = {"input": "a premise", "choices": ["yes", "no"], "label": 1}
    with pytest.raises(TfewError, match="label 2"):
        encode_batch(tokenizer, [good, {**good, "label": 2}])
    with pytest.raises(TfewError, match="non-empty list"):
        encode_batch(tokenizer, [{**good, "choices": []}])
    with pytest.raises(TfewError, match="2 task ids for 1 examples"):
        encode_batch(tokenizer, [good], task_ids=[0, 1])


@pytest.fixture(scope="module")
def cb_data(mirror, tmp_path_factory):
    from tfew.prepare import prepare_task

    out = tmp_path_factory.mktemp("cb")
    prepare_task("cb", [0], out, mirror, max_eval_examples=4)
    return out


@pytest.fixture(scope="module")
def real_examples(rte_data, cb_data):
    """Four RTE rows (2 answer choices) and four CB rows (3 answer choices), interleaved."""
    rte = read_jsonl(rte_data / "eval.jsonl")[:4]
    cb = read_jsonl(cb_data / "eval.jsonl")[:4]
    return [example for pair in zip(rte, cb) for example in pair]


@pytest.fixture
def adapted(tiny_model_dir):
    model = load_seq2seq(tiny_model_dir).eval()
    ia3 = add_ia3(model, ["rte", "cb", "copa"])
    randomize(ia3, seed=7)
    return model, ia3, load_tokenizer(tiny_model_dir)


def test_scoring_methods_agree_on_mixed_batch(adapted, real_examples):
    model, ia3, tokenizer = adapted
    task_ids = ia3.task_ids([example["task"] for example in real_examples]).tolist()
    batch = encode_batch(tokenizer, real_examples, task_ids=task_ids)
    assert sorted(set(batch.num_choices.tolist())) == [2, 3]

    with torch.no_grad():
        results = {method: choice_token_logprobs(model, batch, ia3, method) for method in SCORING_METHODS}
    for method in ("repeat", "shared"):
        torch.testing.assert_close(results[method], results["reencode"], rtol=0, atol=1e-5)
    assert ia3.router.task_ids is None  # routing is reset after every call


def test_scores_match_full_model_forward(adapted, real_examples):
    """Each answer choice scored alone by the model's own forward, with its task's vectors."""
    model, ia3, tokenizer = adapted
    task_ids = ia3.task_ids([example["task"] for example in real_examples]).tolist()
    batch = encode_batch(tokenizer, real_examples, task_ids=task_ids)
    with torch.no_grad():
        batched = choice_token_logprobs(model, batch, ia3, "shared")

    for row in range(batch.choice_ids.shape[0]):
        example = int(batch.example_of_row[row])
        length = int(batch.choice_mask[row].sum())
        target = batch.choice_ids[row : row + 1, :length]
        inputs = batch.input_ids[example : example + 1, : int(batch.attention_mask[example].sum())]
        ia3.use_task(real_examples[example]["task"])
        with torch.no_grad():
            output = model(input_ids=inputs, labels=target)
        expected = torch.log_softmax(output.logits, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
        # Unpadded inputs change the float summation order: log-probabilities near -10 differ by ~1e-6 relative.
        torch.testing.assert_close(batched[row : row + 1, :length], expected, rtol=1e-6, atol=1e-5)
        assert torch.equal(batched[row, length:], torch.zeros_like(batched[row, length:]))


def test_mixed_task_scores_equal_single_task_batches(adapted, real_examples):
    model, ia3, tokenizer = adapted
    tasks = [example["task"] for example in real_examples]
    mixed = encode_batch(tokenizer, real_examples, task_ids=ia3.task_ids(tasks).tolist())
    with torch.no_grad():
        mixed_scores = choice_scores(choice_token_logprobs(model, mixed, ia3), mixed, length_normalize=True)

    for task in ("rte", "cb"):
        positions = [index for index, name in enumerate(tasks) if name == task]
        alone = encode_batch(tokenizer, [real_examples[index] for index in positions])
        ia3.use_task(task)
        with torch.no_grad():
            alone_scores = choice_scores(choice_token_logprobs(model, alone, ia3), alone, length_normalize=True)
        width = alone_scores.shape[1]
        torch.testing.assert_close(mixed_scores[positions, :width], alone_scores, rtol=0, atol=1e-5)


def test_mixed_task_scores_differ_from_one_task(adapted, real_examples):
    """Guards the test above: routing must matter, or equal scores would prove nothing."""
    model, ia3, tokenizer = adapted
    batch = encode_batch(tokenizer, real_examples)
    ia3.use_task("copa")
    with torch.no_grad():
        copa = choice_token_logprobs(model, batch, ia3)
    batch.task_ids = ia3.task_ids([example["task"] for example in real_examples])
    with torch.no_grad():
        routed = choice_token_logprobs(model, batch, ia3)
    assert (copa - routed).abs().max() > 1e-4


def test_shared_gradients_equal_repeat(adapted, real_examples):
    model, ia3, tokenizer = adapted
    batch = encode_batch(tokenizer, real_examples, task_ids=ia3.task_ids([e["task"] for e in real_examples]).tolist())
    gradients = {}
    for method in ("repeat", "shared"):
        for parameter in ia3.trainable_parameters():
            parameter.grad = None
        tfew_losses(choice_token_logprobs(model, batch, ia3, method), batch).total.backward()
        gradients[method] = torch.cat([parameter.grad.flatten() for parameter in ia3.trainable_parameters()])
    assert gradients["shared"].abs().max() > 0
    torch.testing.assert_close(gradients["shared"], gradients["repeat"], rtol=1e-4, atol=1e-6)
