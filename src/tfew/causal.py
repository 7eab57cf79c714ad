"""Decoder-only language models for the in-context learning baselines.

Liu et al. 2022 compare T-Few against GPT-3 (6.7B, 13B, 175B) in-context learning. Those models are not
available, so the demo and the tests use a tiny GPT-2-shaped model with random weights and a byte-level BPE
tokenizer trained on the task text (the tokenizer type GPT-2 and GPT-3 use). Any `AutoModelForCausalLM`
checkpoint from the hub loads through the same `load_causal` call.

Rank classification with a decoder-only model scores each answer choice as a continuation of the prompt.
The prompt runs once per prediction and its key/value cache is shared by all choices, which is the
cost model the paper's FLOPs estimate assumes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tfew.errors import TfewError

log = logging.getLogger(__name__)

END_OF_TEXT = "<|endoftext|>"  # GPT-2's single special token: beginning, end and padding of text


@dataclass
class TinyCausalShape:
    """Sizes of the tiny GPT-2-shaped model. Defaults run in seconds on one CPU core."""

    vocab_size: int = 2000  # byte-level BPE merges plus the 256 byte symbols, trained on the task text
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_positions: int = 1024  # context length in tokens, as in GPT-2
    dropout: float = 0.1  # GPT-2's value; inactive during in-context learning, which only runs inference


def train_causal_tokenizer(texts: list[str], out_dir: Path, vocab_size: int, max_length: int = 1024) -> None:
    """Train a byte-level BPE tokenizer on `texts` and save it as a GPT-2 tokenizer folder."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    if not texts:
        raise TfewError("cannot train a tokenizer on an empty text list")
    out_dir.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, show_progress=False,
                            special_tokens=[END_OF_TEXT])
    tokenizer = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT,
                                  unk_token=END_OF_TEXT, pad_token=END_OF_TEXT, model_max_length=max_length)
    tokenizer.save_pretrained(out_dir)


def build_tiny_causal(texts: list[str], out_dir: Path, shape: TinyCausalShape, seed: int) -> None:
    """Train the tokenizer on `texts`, build a random GPT-2-shaped model and save both to `out_dir`."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    out_dir = Path(out_dir)
    train_causal_tokenizer(texts, out_dir, shape.vocab_size, shape.n_positions)
    tokenizer = AutoTokenizer.from_pretrained(str(out_dir))
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=shape.n_positions,
        n_embd=shape.n_embd,
        n_layer=shape.n_layer,
        n_head=shape.n_head,
        resid_pdrop=shape.dropout,
        embd_pdrop=shape.dropout,
        attn_pdrop=shape.dropout,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    model.save_pretrained(out_dir)
    info = {"kind": "tiny-gpt2", "seed": seed, "shape": asdict(shape), "vocab_size": len(tokenizer)}
    (out_dir / "tfew_model.json").write_text(json.dumps(info, indent=2))
    log.info("built tiny GPT-2 (%d parameters, vocabulary %d) in %s", model.num_parameters(), len(tokenizer), out_dir)


def is_encoder_decoder(model_dir: Path) -> bool:
    """Return whether the model folder holds an encoder-decoder (T5-family) rather than a decoder-only model."""
    from transformers import AutoConfig

    if not (Path(model_dir) / "config.json").is_file():
        raise TfewError(f"no model at {model_dir}: config.json is missing; build one with `tfew model tiny` or "
                        f"`tfew model tiny-causal`")
    return bool(getattr(AutoConfig.from_pretrained(str(model_dir)), "is_encoder_decoder", False))


def load_causal(model_dir: Path, dtype: torch.dtype = torch.float32):
    """Load a decoder-only model and its tokenizer; reject encoder-decoder folders."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if is_encoder_decoder(model_dir):
        raise TfewError(f"{model_dir} contains an encoder-decoder model; load it with tfew.models.load_seq2seq")
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    return model, tokenizer


def context_length(model) -> int:
    """Return the maximum number of positions a decoder-only model attends over."""
    config = model.config
    for name in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise TfewError(f"cannot tell the context length of {type(model).__name__}; pass --max-context TOKENS")


def encode_prompt(tokenizer, prompt: str, choices: list[str], answer_separator: str) -> tuple[list[int], list[list[int]]]:
    """Tokenize a prompt (with the tokenizer's own special tokens) and each choice as its continuation.

    A choice is encoded with the separator in front (" yes"), the way it appears after the prompt.
    """
    prompt_ids = tokenizer(prompt, add_special_tokens=True).input_ids
    if not prompt_ids and tokenizer.bos_token_id is not None:
        prompt_ids = [tokenizer.bos_token_id]
    choice_ids = [tokenizer(answer_separator + choice, add_special_tokens=False).input_ids for choice in choices]
    empty = [choice for choice, ids in zip(choices, choice_ids) if not ids]
    if empty:
        raise TfewError(f"answer choice(s) {empty} give no tokens; check the template's answer choices")
    return prompt_ids, choice_ids


def _pad_right(sequences: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(sequences), width), dtype=torch.long, device=device)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long, device=device)
        mask[row, : len(sequence)] = 1
    return ids, mask


def choice_logprobs(model, prompts: list[list[int]], choices: list[list[list[int]]]) -> list[list[torch.Tensor]]:
    """Return the log-probability of every token of every answer choice, per prompt: [prompt][choice][token].

    The prompts run once, right-padded in one batch. Their key/value cache is then selected once per choice,
    and all choices run as a second batch whose position ids continue each prompt's own length, so padding
    changes no score.
    """
    device = next(model.parameters()).device
    pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    prompt_ids, prompt_mask = _pad_right(prompts, pad_id, device)
    prompt_lengths = prompt_mask.sum(dim=1)
    owners = torch.tensor([index for index, options in enumerate(choices) for _ in options], device=device)
    flat_choices = [ids for options in choices for ids in options]
    choice_ids, choice_mask = _pad_right(flat_choices, pad_id, device)

    with torch.no_grad():
        prompt_output = model(input_ids=prompt_ids, attention_mask=prompt_mask, use_cache=True)
        # The last real position of each prompt predicts the first token of each of its choices.
        last = prompt_output.logits[torch.arange(len(prompts), device=device), prompt_lengths - 1]
        first_logprobs = torch.log_softmax(last.float(), dim=-1).index_select(0, owners)
        cache = prompt_output.cache
        cache.batch_select_indices(owners)

        positions = prompt_lengths.index_select(0, owners).unsqueeze(1) + torch.arange(choice_ids.shape[1], device=device)
        # Padding after a short choice could run past the model's last position; it is masked, so any valid id does.
        positions = positions * choice_mask
        attention_mask = torch.cat([prompt_mask.index_select(0, owners), choice_mask], dim=1)
        output = model(input_ids=choice_ids, attention_mask=attention_mask, position_ids=positions, cache=cache,
                       use_cache=False)
        logprobs = torch.log_softmax(output.logits.float(), dim=-1)

    per_row = []
    for row, ids in enumerate(flat_choices):
        first = first_logprobs[row, ids[0]].reshape(1)
        targets = torch.tensor(ids[1:], dtype=torch.long, device=device).unsqueeze(-1)
        rest = logprobs[row, : len(ids) - 1].gather(-1, targets).squeeze(-1)
        per_row.append(torch.cat([first, rest]).cpu())

    grouped, start = [], 0
    for options in choices:
        grouped.append(per_row[start : start + len(options)])
        start += len(options)
    return grouped
