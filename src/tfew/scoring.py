"""Rank classification and the T-Few training objective for encoder-decoder models.

Every answer choice of an example is scored by the log-likelihood of its tokens given the input (summed, or
divided by the number of target tokens under length normalisation), and the best-scoring choice is the
prediction. The same per-token log-probabilities give the three loss terms of Liu et al. 2022, Section 3.2:
L_LM on the correct choice, L_UL (unlikelihood, Eq. 1) on the incorrect ones and L_LN (Eq. 2) over the
length-normalised choice scores.

Choices are flattened: an example with 2 choices and one with 4 give 6 decoder rows, so a batch may mix
examples with different numbers of choices. Where a per-example matrix is needed (scores, L_LN), absent
choices are padded with -inf, which softmax and argmax both ignore.

Target token counts include T5's end-of-sequence token, as in the official T-Few code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tfew.errors import TfewError
from tfew.models import PAD_ID

# The official T-Few code computes the unlikelihood term as -log(1 - p + 0.01); the constant keeps the loss
# and its gradient finite when the model puts all its mass on an incorrect token. Eq. 1 of the paper has no
# such term.
UNLIKELIHOOD_EPSILON = 0.01

# How decoder rows obtain the encoder's information, from most to least compute:
#   "reencode": run the encoder once per answer choice;
#   "repeat":   run the encoder once per example and repeat its states per choice, as the official T-Few code
#               does, so every cross-attention layer recomputes its key and value projections per choice;
#   "shared":   run the encoder and the cross-attention key/value projections once per example.
# All three give the same log-probabilities up to float rounding.
SCORING_METHODS = ("reencode", "repeat", "shared")


@dataclass
class ChoiceBatch:
    """A tokenized batch for rank classification, with answer choices flattened into decoder rows."""

    input_ids: torch.Tensor  # [examples, input length]
    attention_mask: torch.Tensor  # [examples, input length]
    choice_ids: torch.Tensor  # [rows, target length], padded with PAD_ID
    choice_mask: torch.Tensor  # [rows, target length], 1 on real target tokens (EOS included)
    example_of_row: torch.Tensor  # [rows], the example each decoder row belongs to
    choice_of_row: torch.Tensor  # [rows], the choice's position within its example
    num_choices: torch.Tensor  # [examples]
    labels: torch.Tensor  # [examples], index of the correct choice
    task_ids: torch.Tensor | None = None  # [examples], rows of the (IA)^3 vectors, for mixed-task batches

    @property
    def num_examples(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str) -> "ChoiceBatch":
        moved = {name: (value.to(device) if torch.is_tensor(value) else value) for name, value in vars(self).items()}
        return ChoiceBatch(**moved)


def _check_example(example: dict, position: int) -> None:
    where = f"example {position}"
    if "example_index" in example:
        where += f" (example_index {example['example_index']}, template {example.get('template')!r})"
    choices = example.get("choices")
    if not isinstance(choices, list) or not choices or not all(isinstance(choice, str) for choice in choices):
        raise TfewError(f"{where}: `choices` must be a non-empty list of strings, got {choices!r}")
    label = example.get("label")
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < len(choices):
        raise TfewError(f"{where}: label {label!r} is not an index into its {len(choices)} answer choices")


def encode_batch(tokenizer, examples: list[dict], max_input_length: int = 256, task_ids: list[int] | None = None) -> ChoiceBatch:
    """Tokenize examples (each with `input`, `choices` and `label`) into a ChoiceBatch.

    `task_ids` gives each example's row of the (IA)^3 vectors (see `IA3Model.task_ids`) for mixed-task batches.
    """
    if not examples:
        raise TfewError("cannot encode an empty batch")
    for position, example in enumerate(examples):
        _check_example(example, position)
    if task_ids is not None and len(task_ids) != len(examples):
        raise TfewError(f"{len(task_ids)} task ids for {len(examples)} examples; pass one task id per example")

    inputs = tokenizer(
        [example["input"] for example in examples],
        max_length=max_input_length,
        truncation=True,
        padding=True,
        return_tensors="pt",
    )

    flat_choices: list[str] = []
    example_of_row: list[int] = []
    choice_of_row: list[int] = []
    for example_index, example in enumerate(examples):
        for choice_index, choice in enumerate(example["choices"]):
            flat_choices.append(choice)
            example_of_row.append(example_index)
            choice_of_row.append(choice_index)
    targets = tokenizer(flat_choices, padding=True, return_tensors="pt")

    return ChoiceBatch(
        input_ids=inputs.input_ids,
        attention_mask=inputs.attention_mask,
        choice_ids=targets.input_ids,
        choice_mask=targets.attention_mask,
        example_of_row=torch.tensor(example_of_row),
        choice_of_row=torch.tensor(choice_of_row),
        num_choices=torch.tensor([len(example["choices"]) for example in examples]),
        labels=torch.tensor([example["label"] for example in examples]),
        task_ids=None if task_ids is None else torch.as_tensor(task_ids, dtype=torch.long),
    )


def _shift_right(choice_ids: torch.Tensor) -> torch.Tensor:
    start = torch.full_like(choice_ids[:, :1], PAD_ID)
    return torch.cat([start, choice_ids[:, :-1]], dim=1)


def _route(ia3, task_ids: torch.Tensor | None) -> None:
    # Only mixed-task batches carry task ids; otherwise the adapter's active task applies to every row.
    if ia3 is not None:
        ia3.route(task_ids)


def _shared_cross_attention_cache(decoder, encoder_states: torch.Tensor, rows: torch.Tensor):
    """Project the encoder states to cross-attention keys and values once per example, then index them per row.

    The decoder's cross-attention layers find the keys and values in the cache, marked as already computed,
    and skip their own `k` and `v` projections.
    """
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    batch, length, _ = encoder_states.shape
    for layer_index, block in enumerate(decoder.block):
        attention = block.layer[1].EncDecAttention
        shape = (batch, length, -1, attention.key_value_proj_dim)
        keys = attention.k(encoder_states).view(shape).transpose(1, 2)
        values = attention.v(encoder_states).view(shape).transpose(1, 2)
        cache.cross_attention_cache.update(keys.index_select(0, rows), values.index_select(0, rows), layer_index)
        cache.is_updated[layer_index] = True
    return cache


def _check_shared_supported(model) -> None:
    blocks = getattr(model.get_decoder(), "block", None)
    if not blocks or not hasattr(blocks[0].layer[1], "EncDecAttention"):
        raise TfewError(
            f"scoring method 'shared' needs T5-style decoder blocks with `EncDecAttention`; "
            f"{type(model).__name__} has none. Use method='repeat'"
        )


def choice_token_logprobs(model, batch: ChoiceBatch, ia3=None, method: str = "shared") -> torch.Tensor:
    """Return the log-probability of every target token of every decoder row, zero on padding: [rows, length].

    With `batch.task_ids` set and an (IA)^3 adapter given, the encoder runs each example with its task's vectors
    and the decoder runs each answer choice with the vectors of its example's task.
    """
    if method not in SCORING_METHODS:
        raise TfewError(f"unknown scoring method {method!r}; choose one of {SCORING_METHODS}")
    if method == "shared":
        _check_shared_supported(model)

    try:
        hidden = _decoder_states(model, batch, ia3, method)
    finally:
        _route(ia3, None)

    config = model.config
    if getattr(config, "scale_decoder_outputs", config.tie_word_embeddings):
        hidden = hidden * (config.d_model**-0.5)
    logits = model.lm_head(hidden).float()
    logprobs = torch.log_softmax(logits, dim=-1)
    token_logprobs = logprobs.gather(-1, batch.choice_ids.unsqueeze(-1)).squeeze(-1)
    return token_logprobs * batch.choice_mask


def _decoder_states(model, batch: ChoiceBatch, ia3, method: str) -> torch.Tensor:
    rows = batch.example_of_row
    row_task_ids = None if batch.task_ids is None else batch.task_ids.index_select(0, rows)
    encoder_mask = batch.attention_mask.index_select(0, rows)

    if method == "reencode":
        _route(ia3, row_task_ids)
        encoder_states = model.get_encoder()(
            input_ids=batch.input_ids.index_select(0, rows), attention_mask=encoder_mask
        ).last_hidden_state
        cache = None
    else:
        _route(ia3, batch.task_ids)
        per_example = model.get_encoder()(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        cache = _shared_cross_attention_cache(model.get_decoder(), per_example, rows) if method == "shared" else None
        encoder_states = per_example.index_select(0, rows)
        _route(ia3, row_task_ids)

    decoder_kwargs = {"cache": cache} if cache is not None else {}
    return model.get_decoder()(
        input_ids=_shift_right(batch.choice_ids),
        attention_mask=batch.choice_mask,
        encoder_hidden_states=encoder_states,
        encoder_attention_mask=encoder_mask,
        **decoder_kwargs,
    ).last_hidden_state


def rows_to_matrix(values: torch.Tensor, batch: ChoiceBatch, fill: float = float("-inf")) -> torch.Tensor:
    """Scatter per-row values into an [examples, max choices] matrix, `fill` where an example has fewer choices."""
    matrix = values.new_full((batch.num_examples, int(batch.num_choices.max())), fill)
    matrix[batch.example_of_row, batch.choice_of_row] = values
    return matrix


def choice_scores(token_logprobs: torch.Tensor, batch: ChoiceBatch, length_normalize: bool) -> torch.Tensor:
    """Return rank-classification scores as an [examples, max choices] matrix (-inf for absent choices).

    A score is the summed log-probability of a choice's target tokens, divided by their number (EOS included)
    when `length_normalize` is on.
    """
    summed = token_logprobs.sum(dim=1)
    if length_normalize:
        summed = summed / batch.choice_mask.sum(dim=1).clamp(min=1)
    return rows_to_matrix(summed, batch)


def predict(scores: torch.Tensor) -> torch.Tensor:
    """Pick the best-scoring choice per example.

    Tie rule: when several choices share the maximum score exactly (equal float values, as identical answer
    choices always do), the lowest choice index wins. The official T-Few code gets the same result from
    `min` over negative log-likelihoods; here the rule is applied explicitly instead of relying on the
    first-occurrence behaviour of a reduction kernel. Absent choices (-inf) never win, and NaN raises.
    """
    if torch.isnan(scores).any():
        raise TfewError("a choice score is NaN; check the model output (fp16 T5 overflows, use bf16 or fp32)")
    best = scores.max(dim=1, keepdim=True).values
    positions = torch.arange(scores.shape[1], device=scores.device).expand_as(scores)
    not_best = torch.full_like(positions, scores.shape[1])
    return torch.where(scores == best, positions, not_best).min(dim=1).values


@dataclass
class LossTerms:
    """The T-Few loss terms of one batch; switched-off terms are zero."""

    lm: torch.Tensor
    ul: torch.Tensor
    ln: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """L_LM + L_UL + L_LN, unweighted as in Liu et al. 2022, Section 3.2."""
        return self.lm + self.ul + self.ln


# Loss variant name -> (use L_UL, use L_LN); L_LM is always on.
LOSS_VARIANTS = {
    "lm": (False, False),
    "lm+ul": (True, False),
    "lm+ln": (False, True),
    "lm+ul+ln": (True, True),
}


def tfew_losses(
    token_logprobs: torch.Tensor,
    batch: ChoiceBatch,
    use_ul: bool = True,
    use_ln: bool = True,
    length_normalize: bool = True,
    use_lm: bool = True,
) -> LossTerms:
    """Compute L_LM, L_UL and L_LN from per-token log-probabilities of every answer choice.

    Each `use_*` flag switches one term on or off; T-Few's loss variants (`LOSS_VARIANTS`) always keep L_LM.
    `length_normalize` sets the scores inside L_LN: per-token means (Eq. 2) or sums.
    """
    mask = batch.choice_mask.to(token_logprobs.dtype)
    correct = (batch.choice_of_row == batch.labels.index_select(0, batch.example_of_row)).to(mask.dtype)
    zero = token_logprobs.new_zeros(())

    # L_LM: cross-entropy per token of the correct choices, averaged over all their tokens in the batch.
    correct_mask = mask * correct.unsqueeze(1)
    lm = -(token_logprobs * correct_mask).sum() / correct_mask.sum().clamp(min=1) if use_lm else zero

    ul = _unlikelihood(token_logprobs, mask * (1 - correct).unsqueeze(1)) if use_ul else zero

    ln = zero
    if use_ln:
        # L_LN: softmax cross-entropy over the choice scores; absent choices are -inf and get zero probability.
        scores = choice_scores(token_logprobs, batch, length_normalize=length_normalize)
        ln = F.cross_entropy(scores, batch.labels)
    return LossTerms(lm=lm, ul=ul, ln=ln)


def _unlikelihood(token_logprobs: torch.Tensor, incorrect_mask: torch.Tensor) -> torch.Tensor:
    """-log(1 - p + epsilon) on every token of every incorrect choice, averaged over those tokens.

    The official code also adds -log(1 + epsilon) for every masked position to the sum (a constant that moves
    the logged value but no gradient); here masked positions add nothing. A batch where every example has a
    single choice has no incorrect tokens and contributes zero, not 0/0.
    """
    probabilities = token_logprobs.exp()
    # The clamp only guards against p rounding above 1; for p <= 1 the argument is already >= epsilon.
    unlikelihood = -torch.log((1 - probabilities + UNLIKELIHOOD_EPSILON).clamp(min=UNLIKELIHOOD_EPSILON))
    # With no incorrect tokens the numerator is 0 as well, so the clamp turns 0/0 into 0.
    return (unlikelihood * incorrect_mask).sum() / incorrect_mask.sum().clamp(min=1)
