"""Rank classification and the T-Few training objective for encoder-decoder models.

Every answer choice of an example is scored by the log-likelihood of its tokens given the input (summed, or
divided by the number of target tokens under length normalisation), and the best-scoring choice is the
prediction. The same per-token log-probabilities give the three loss terms of Liu et al. 2022, Section 3.2:
L_LM on the correct choice, L_UL (unlikelihood, Eq. 1) on the incorrect ones and L_LN (Eq. 2) over the
length-normalised choice scores.

Choices are flattened: an example with 2 choices and one with 4 give 6 decoder rows, so a batch may mix
examples with different numbers of choices without padding whole choices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tfew.models import PAD_ID

# The official T-Few code computes the unlikelihood term as -log(1 - p + 0.01); the constant keeps the loss
# finite when the model puts all its mass on an incorrect token. Eq. 1 of the paper has no such term.
UNLIKELIHOOD_EPSILON = 0.01

# How decoder rows obtain the encoder's information, from most to least compute:
#   "reencode": run the encoder once per answer choice;
#   "repeat":   run the encoder once per example and repeat its states per choice, as the original T-Few code
#               does, so every cross-attention layer recomputes its key and value projections per choice;
#   "shared":   run the encoder and the cross-attention key/value projections once per example.
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


def encode_batch(tokenizer, examples: list[dict], max_input_length: int = 256, task_ids: list[int] | None = None) -> ChoiceBatch:
    """Tokenize examples (each with `input`, `choices` and `label`) into a ChoiceBatch."""
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
        task_ids=None if task_ids is None else torch.tensor(task_ids),
    )


def _shift_right(choice_ids: torch.Tensor) -> torch.Tensor:
    start = torch.full_like(choice_ids[:, :1], PAD_ID)
    return torch.cat([start, choice_ids[:, :-1]], dim=1)


def _route(ia3, task_ids: torch.Tensor | None) -> None:
    # Only mixed-task batches carry task ids; otherwise the adapter's active task applies to every row.
    if ia3 is not None:
        ia3.route(task_ids)


def _shared_cross_attention_cache(decoder, encoder_states: torch.Tensor, rows: torch.Tensor):
    """Project the encoder states to cross-attention keys and values once per example, then index them per row."""
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


def choice_token_logprobs(model, batch: ChoiceBatch, ia3=None, method: str = "shared") -> torch.Tensor:
    """Return the log-probability of every target token of every decoder row, zero on padding: [rows, length]."""
    if method not in SCORING_METHODS:
        raise ValueError(f"unknown scoring method {method!r}; choose one of {SCORING_METHODS}")
    rows = batch.example_of_row
    row_task_ids = None if batch.task_ids is None else batch.task_ids.index_select(0, rows)
    decoder_input_ids = _shift_right(batch.choice_ids)
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
        decoder = model.get_decoder()
        cache = _shared_cross_attention_cache(decoder, per_example, rows) if method == "shared" else None
        encoder_states = per_example.index_select(0, rows)
        _route(ia3, row_task_ids)

    decoder_kwargs = {"cache": cache} if cache is not None else {}
    hidden = model.get_decoder()(
        input_ids=decoder_input_ids,
        attention_mask=batch.choice_mask,
        encoder_hidden_states=encoder_states,
        encoder_attention_mask=encoder_mask,
        **decoder_kwargs,
    ).last_hidden_state
    _route(ia3, None)

    config = model.config
    if getattr(config, "scale_decoder_outputs", config.tie_word_embeddings):
        hidden = hidden * (config.d_model**-0.5)
    logits = model.lm_head(hidden).float()
    logprobs = torch.log_softmax(logits, dim=-1)
    token_logprobs = logprobs.gather(-1, batch.choice_ids.unsqueeze(-1)).squeeze(-1)
    return token_logprobs * batch.choice_mask


def rows_to_matrix(values: torch.Tensor, batch: ChoiceBatch, fill: float = float("-inf")) -> torch.Tensor:
    """Scatter per-row values into an [examples, max choices] matrix, `fill` where an example has fewer choices."""
    matrix = values.new_full((batch.num_examples, int(batch.num_choices.max())), fill)
    matrix[batch.example_of_row, batch.choice_of_row] = values
    return matrix


def choice_scores(token_logprobs: torch.Tensor, batch: ChoiceBatch, length_normalize: bool) -> torch.Tensor:
    """Return rank-classification scores as an [examples, max choices] matrix (-inf for absent choices)."""
    summed = token_logprobs.sum(dim=1)
    if length_normalize:
        summed = summed / batch.choice_mask.sum(dim=1).clamp(min=1)
    return rows_to_matrix(summed, batch)


def predict(scores: torch.Tensor) -> torch.Tensor:
    """Pick the best choice per example; a tie goes to the lowest choice index, as `torch.argmax` documents."""
    return scores.argmax(dim=1)


@dataclass
class LossTerms:
    """The T-Few loss terms of one batch; switched-off terms are zero."""

    lm: torch.Tensor
    ul: torch.Tensor
    ln: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.lm + self.ul + self.ln


LOSS_VARIANTS = {
    "lm": (False, False),
    "lm+ul": (True, False),
    "lm+ln": (False, True),
    "lm+ul+ln": (True, True),
}


def tfew_losses(token_logprobs: torch.Tensor, batch: ChoiceBatch, use_ul: bool = True, use_ln: bool = True) -> LossTerms:
    """Compute L_LM, L_UL and L_LN from per-token log-probabilities of every answer choice."""
    mask = batch.choice_mask.to(token_logprobs.dtype)
    correct = (batch.choice_of_row == batch.labels.index_select(0, batch.example_of_row)).to(mask.dtype)

    # L_LM: cross-entropy per token of the correct choices, averaged over all their tokens in the batch.
    correct_mask = mask * correct.unsqueeze(1)
    lm = -(token_logprobs * correct_mask).sum() / correct_mask.sum().clamp(min=1)

    zero = token_logprobs.new_zeros(())
    ul = zero
    if use_ul:
        # L_UL: -log(1 - p) on every token of every incorrect choice, averaged over those tokens. A batch
        # where every example has a single choice has no such tokens and contributes zero, not 0/0.
        incorrect_mask = mask * (1 - correct).unsqueeze(1)
        count = incorrect_mask.sum()
        if count > 0:
            probabilities = token_logprobs.exp()
            unlikelihood = -torch.log((1 - probabilities + UNLIKELIHOOD_EPSILON).clamp(min=UNLIKELIHOOD_EPSILON))
            ul = (unlikelihood * incorrect_mask).sum() / count

    ln = zero
    if use_ln:
        # L_LN: softmax cross-entropy over length-normalised choice scores; absent choices are -inf.
        scores = choice_scores(token_logprobs, batch, length_normalize=True)
        ln = F.cross_entropy(scores, batch.labels)
    return LossTerms(lm=lm, ul=ul, ln=ln)
