"""Cost accounting: inference and training FLOPs per example and disk bytes per task, for every method.

Two estimates sit side by side in every row:

- the paper's formula (Liu et al. 2022, Section 4.2, after Kaplan et al. 2020). A decoder-only model spends
  2N FLOPs per token for inference and 6N for training. An encoder-decoder spends N and 3N, because each token
  passes through only the encoder or only the decoder. N is the non-embedding parameter count (Kaplan et al.
  2020, Section 2.1), counted here on the real architecture;
- a measurement: `torch.utils.flop_counter.FlopCounterMode` over one forward pass (and, for T-Few, one
  forward and backward pass of a training batch) of the real architecture built on the `meta` device, which
  allocates no weights, so even GPT-3 175B is counted in seconds on a laptop. The counter counts matrix
  multiplications (2 FLOPs per multiply-add, the same convention as 2N), attention included because
  scaled-dot-product attention decomposes into matrix products on `meta`; element-wise operations are left out.

Both use the same token counts, so their difference isolates the per-token approximation. The measured T-Few
training cost is about two thirds of the formula's 3N: the backbone is frozen, so the backward pass computes
no weight gradients.

    tfew costs --preset paper-table1 --out results/paper/costs/table1.csv
    tfew costs --model results/demo/models/tiny-t0 --data results/demo/data/rte/eval.jsonl \
        --train results/demo/data/rte/few_shot_seed0.jsonl --out results/demo/costs/model.csv
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from tfew.errors import TfewError
from tfew.models import require_model_dir, tie_input_embeddings

log = logging.getLogger(__name__)

ENCODER_DECODER = "encoder-decoder"
DECODER_ONLY = "decoder-only"


@dataclass(frozen=True)
class Architecture:
    """A model shape that can be built on the meta device."""

    name: str
    kind: str  # ENCODER_DECODER (T5Config keywords) or DECODER_ONLY (GPT2Config keywords)
    config: dict
    source: str


ARCHITECTURES = {
    architecture.name: architecture
    for architecture in (
        Architecture(
            "t0-11b", ENCODER_DECODER,
            {"d_model": 4096, "d_ff": 10240, "d_kv": 64, "num_heads": 64, "num_layers": 24, "vocab_size": 32128,
             "feed_forward_proj": "gated-gelu"},
            "T5 v1.1 XXL shape, shared by T0 (11B) and T5+LM XXL (Sanh et al. 2022; Lester et al. 2021)",
        ),
        Architecture(
            "t0-3b", ENCODER_DECODER,
            {"d_model": 2048, "d_ff": 5120, "d_kv": 64, "num_heads": 32, "num_layers": 24, "vocab_size": 32128,
             "feed_forward_proj": "gated-gelu"},
            "T5 v1.1 XL shape of T0-3B",
        ),
        Architecture(
            "gpt3-6.7b", DECODER_ONLY,
            {"n_embd": 4096, "n_layer": 32, "n_head": 32, "n_positions": 2048, "vocab_size": 50257},
            "Brown et al. 2020, Table 2.1",
        ),
        # Brown et al. 2020, Table 2.1 lists d_model 5140 with 40 heads of 128 dimensions, which cannot both hold;
        # 40 x 128 = 5120 is used.
        Architecture(
            "gpt3-13b", DECODER_ONLY,
            {"n_embd": 5120, "n_layer": 40, "n_head": 40, "n_positions": 2048, "vocab_size": 50257},
            "Brown et al. 2020, Table 2.1 (d_model 5120 = 40 heads x 128)",
        ),
        Architecture(
            "gpt3-175b", DECODER_ONLY,
            {"n_embd": 12288, "n_layer": 96, "n_head": 96, "n_positions": 2048, "vocab_size": 50257},
            "Brown et al. 2020, Table 2.1",
        ),
    )
}


@dataclass(frozen=True)
class TokenCounts:
    """Token counts behind a cost estimate; defaults are the paper's (Liu et al. 2022, Section 4.2)."""

    example_tokens: int = 103  # input plus all answer choices, median over the held-out datasets
    # NOTE: the paper gives only the combined 103 tokens. This split between encoder input and answer-choice
    # targets is an assumption, and it moves the measured encoder-decoder FLOPs by a few percent.
    example_target_tokens: int = 8
    demonstration_tokens: int = 98  # one in-context example: input plus correct answer
    demonstrations: int = 41  # mean number of shots over the 11 datasets
    steps: int = 1000  # T-Few training steps
    batch_size: int = 8  # T-Few examples per step
    bytes_per_token: int = 4  # ICL stores its demonstrations as 32-bit token ids
    bytes_per_parameter: int = 4  # (IA)^3 vectors stored in fp32

    @property
    def icl_concat_tokens(self) -> int:
        """Tokens per prediction with all demonstrations in one prompt and a key/value cache (41 x 98 + 103)."""
        return self.demonstrations * self.demonstration_tokens + self.example_tokens

    @property
    def icl_ensemble_tokens(self) -> int:
        """Tokens per prediction with one demonstration per forward pass: 41 x (98 + 103)."""
        return self.demonstrations * (self.demonstration_tokens + self.example_tokens)

    @property
    def icl_disk_bytes(self) -> int:
        return self.demonstrations * self.demonstration_tokens * self.bytes_per_token


# Liu et al. 2022, Table 1 (T0-11B backbone): inference FLOPs per example, training FLOPs, disk bytes.
PAPER_TABLE1 = {
    "t-few": (1.1e12, 2.7e16, 4.2e6),
    "t0-zero-shot": (1.1e12, 0.0, 0.0),
    "t5+lm-icl": (4.5e13, 0.0, 16e3),
    "gpt3-6.7b-icl": (5.4e13, 0.0, 16e3),
    "gpt3-13b-icl": (1.0e14, 0.0, 16e3),
    "gpt3-175b-icl": (1.4e15, 0.0, 16e3),
}

COLUMNS = [
    "method", "model", "architecture", "parameters", "non_embedding_parameters", "tokens_per_example",
    "inference_flops_per_example", "training_flops", "disk_bytes",
    "measured_inference_flops_per_example", "measured_training_flops",
    "paper_inference_flops_per_example", "paper_training_flops", "paper_disk_bytes", "source",
]


def build_on_meta(architecture: Architecture, min_positions: int = 0) -> nn.Module:
    """Build the architecture with weights on the meta device (no memory); widen positions when asked."""
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    with torch.device("meta"):
        if architecture.kind == ENCODER_DECODER:
            config = T5Config(**architecture.config, tie_word_embeddings=False)
            # transformers 5 does not apply tie_word_embeddings=False from the constructor; T0 is untied.
            config.tie_word_embeddings = False
            model = T5ForConditionalGeneration(config)
            tie_input_embeddings(model)
            return model
        settings = dict(architecture.config)
        settings["n_positions"] = max(settings["n_positions"], min_positions)
        return GPT2LMHeadModel(GPT2Config(**settings))


def model_on_meta(model_dir: Path) -> nn.Module:
    """Build a saved model's architecture on the meta device from its config.json."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    model_dir = require_model_dir(model_dir)
    config = AutoConfig.from_pretrained(str(model_dir))
    saved = json.loads((model_dir / "config.json").read_text())
    if saved.get("tie_word_embeddings") is False:
        # transformers 5 does not apply a saved tie_word_embeddings=False (see tfew.models.load_seq2seq).
        config.tie_word_embeddings = False
    # With a pad token id set, decoder-only models look for padding in the input ids, and meta tensors hold no
    # values to look at. The measurement has no padding, so the id is dropped.
    config.pad_token_id = None
    with torch.device("meta"):
        if getattr(config, "is_encoder_decoder", False):
            model = AutoModelForSeq2SeqLM.from_config(config)
            if hasattr(model, "shared"):
                tie_input_embeddings(model)
            return model
        return AutoModelForCausalLM.from_config(config)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Return (all parameters, non-embedding parameters) of the backbone; tied weights count once.

    Non-embedding excludes token and position embeddings, T5's relative position biases (also embedding
    tables) and the output layer, as Kaplan et al. 2020 define N. (IA)^3 vectors are not counted at all.
    """
    from tfew.ia3 import IA3Linear

    all_ids = {id(parameter): parameter.numel() for parameter in model.parameters()}
    excluded = set()
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            excluded.update(id(parameter) for parameter in module.parameters())
        if isinstance(module, IA3Linear):
            excluded.add(id(module.ia3_vectors))
    output = model.get_output_embeddings()
    if output is not None:
        excluded.update(id(parameter) for parameter in output.parameters())
    non_embedding = sum(count for key, count in all_ids.items() if key not in excluded)
    return sum(all_ids.values()), non_embedding


def kind_of(model: nn.Module) -> str:
    return ENCODER_DECODER if getattr(model.config, "is_encoder_decoder", False) else DECODER_ONLY


def formula_flops_per_token(kind: str, non_embedding: int, training: bool = False) -> float:
    """Return FLOPs per token: N (inference) or 3N (training) for encoder-decoders, 2N or 6N for decoders."""
    per_token = non_embedding if kind == ENCODER_DECODER else 2 * non_embedding
    return 3 * per_token if training else per_token


def ia3_parameters(model: nn.Module) -> int:
    """Return the (IA)^3 parameter count of one task on an encoder-decoder (wraps the model in place)."""
    from tfew.ia3 import add_ia3

    return add_ia3(model, ["task"]).parameter_counts()["total"]


def _meta_ids(batch: int, length: int) -> torch.Tensor:
    return torch.zeros((batch, length), dtype=torch.long, device="meta")


def measure_inference(model: nn.Module, tokens: int, target_tokens: int, passes: int = 1) -> int:
    """Count the FLOPs of `passes` forward passes over `tokens` tokens (encoder-decoders: `target_tokens` of
    them enter the decoder)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        if kind_of(model) == ENCODER_DECODER:
            if not 0 < target_tokens < tokens:
                raise TfewError(f"target tokens ({target_tokens}) must lie between 0 and the example's {tokens} tokens")
            model(input_ids=_meta_ids(1, tokens - target_tokens), decoder_input_ids=_meta_ids(1, target_tokens))
        else:
            model(input_ids=_meta_ids(1, tokens))
    return counter.get_total_flops() * passes


def measure_training(model: nn.Module, counts: TokenCounts) -> int:
    """Count the FLOPs of all T-Few training steps: forward and backward of one batch with (IA)^3, times steps.

    `model` must already carry (IA)^3 layers, so that only the vectors require gradients.
    """
    from torch.utils.flop_counter import FlopCounterMode

    inputs = _meta_ids(counts.batch_size, counts.example_tokens - counts.example_target_tokens)
    targets = _meta_ids(counts.batch_size, counts.example_target_tokens)
    with FlopCounterMode(display=False) as counter:
        output = model(input_ids=inputs, decoder_input_ids=targets, labels=targets)
        output.loss.backward()
    return counter.get_total_flops() * counts.steps


def method_row(method: str, model_name: str, architecture: str, model: nn.Module, tokens: int, training_flops: float,
               disk_bytes: float, measured_inference: int, measured_training: int | None, source: str,
               published: bool = False) -> dict:
    """Assemble one output row; the formula's inference FLOPs come from the model's non-embedding count.

    `published` adds the paper's Table 1 values for the method beside the computed ones.
    """
    total, non_embedding = count_parameters(model)
    paper = PAPER_TABLE1[method] if published else (None, None, None)
    return {
        "method": method,
        "model": model_name,
        "architecture": architecture,
        "parameters": total,
        "non_embedding_parameters": non_embedding,
        "tokens_per_example": tokens,
        "inference_flops_per_example": formula_flops_per_token(kind_of(model), non_embedding) * tokens,
        "training_flops": training_flops,
        "disk_bytes": disk_bytes,
        "measured_inference_flops_per_example": measured_inference,
        "measured_training_flops": measured_training if measured_training is not None else 0,
        "paper_inference_flops_per_example": paper[0],
        "paper_training_flops": paper[1],
        "paper_disk_bytes": paper[2],
        "source": source,
    }


def paper_table1(counts: TokenCounts = TokenCounts()) -> pd.DataFrame:
    """Reproduce Liu et al. 2022, Table 1 (T0-11B, T5+LM XXL and GPT-3 ICL) by formula and by measurement."""
    rows = []
    t0 = build_on_meta(ARCHITECTURES["t0-11b"])
    _, t0_n = count_parameters(t0)
    zero_shot_measured = measure_inference(t0, counts.example_tokens, counts.example_target_tokens)
    icl_measured = measure_inference(t0, counts.icl_concat_tokens, counts.example_target_tokens)
    training = formula_flops_per_token(ENCODER_DECODER, t0_n, training=True) * counts.steps * counts.batch_size * counts.example_tokens
    rows.append(method_row("t0-zero-shot", "bigscience/T0", "t0-11b", t0, counts.example_tokens, 0.0, 0.0,
                           zero_shot_measured, None, "rank classification, no training, nothing stored per task", published=True))
    rows.append(method_row("t5+lm-icl", "google/t5-xxl-lm-adapt", "t0-11b", t0, counts.icl_concat_tokens, 0.0,
                           counts.icl_disk_bytes, icl_measured, None,
                           f"{counts.demonstrations} demonstrations of {counts.demonstration_tokens} tokens, as the "
                           f"paper counts them (one prompt)", published=True))

    vectors = ia3_parameters(t0)  # wraps t0 in place, so the T-Few measurements below include (IA)^3
    rows.insert(0, method_row(
        "t-few", "bigscience/T0", "t0-11b", t0, counts.example_tokens, training, vectors * counts.bytes_per_parameter,
        measure_inference(t0, counts.example_tokens, counts.example_target_tokens), measure_training(t0, counts),
        f"(IA)^3 vectors: {vectors} parameters; {counts.steps} steps x batch {counts.batch_size}", published=True,
    ))

    for size in ("6.7b", "13b", "175b"):
        architecture = ARCHITECTURES[f"gpt3-{size}"]
        gpt = build_on_meta(architecture, min_positions=counts.icl_concat_tokens)
        rows.append(method_row(
            f"gpt3-{size}-icl", f"GPT-3 {size.upper()}", architecture.name, gpt, counts.icl_concat_tokens, 0.0,
            counts.icl_disk_bytes, measure_inference(gpt, counts.icl_concat_tokens, 0), None,
            f"{architecture.source}; positions widened to {counts.icl_concat_tokens} for the measurement "
            f"(GPT-3's context is 2048 tokens)", published=True,
        ))
    return pd.DataFrame(rows, columns=COLUMNS)


def median_tokens(tokenizer, texts: list[str], special_tokens: bool = True) -> int:
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=special_tokens).input_ids]
    return int(statistics.median(lengths))


def run_token_counts(model_dir: Path, eval_file: Path | None, train_file: Path | None,
                     base: TokenCounts) -> TokenCounts:
    """Measure the run's own token counts (medians, as the paper does) from its rendered data files."""
    from transformers import AutoTokenizer

    from tfew.data import read_jsonl

    if eval_file is None and train_file is None:
        return base
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    counts = base
    if eval_file is not None:
        rows = read_jsonl(eval_file, required_fields=("input", "choices"))
        inputs = median_tokens(tokenizer, [row["input"] for row in rows])
        targets = int(statistics.median(
            sum(len(ids) for ids in tokenizer(row["choices"]).input_ids) for row in rows
        ))
        counts = replace(counts, example_tokens=inputs + targets, example_target_tokens=targets)
    if train_file is not None:
        rows = read_jsonl(train_file, required_fields=("input", "choices", "label", "example_index"))
        demonstration = median_tokens(tokenizer, [row["input"] + " " + row["choices"][row["label"]] for row in rows])
        shots = len({row["example_index"] for row in rows})
        counts = replace(counts, demonstration_tokens=demonstration, demonstrations=shots)
    return counts


def icl_tokens_from_predictions(paths: list[Path]) -> dict[tuple[str, str], int]:
    """Return the median tokens per prediction per (model name, ICL method) found in `tfew icl` files."""
    frame = pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)
    missing = [column for column in ("model_name", "method", "tokens_per_prediction") if column not in frame.columns]
    if missing:
        raise TfewError(f"{paths}: missing columns {missing}; pass prediction files written by `tfew icl`")
    medians = frame.groupby(["model_name", "method"])["tokens_per_prediction"].median()
    return {key: int(value) for key, value in medians.items()}


def fitting_demonstrations(counts: TokenCounts, max_context: int) -> int:
    """Return how many demonstrations of the median length fit in the context beside a median example."""
    room = max(0, max_context - counts.example_tokens)
    return min(counts.demonstrations, room // max(1, counts.demonstration_tokens))


def model_context(model_dir: Path, model: nn.Module) -> int:
    """Return the prompt token limit `tfew icl` uses by default for this model."""
    from transformers import AutoTokenizer

    from tfew.causal import context_length
    from tfew.icl import DEFAULT_SEQ2SEQ_CONTEXT, UNSET_MODEL_MAX_LENGTH

    if kind_of(model) == DECODER_ONLY:
        return context_length(model)
    limit = AutoTokenizer.from_pretrained(str(model_dir)).model_max_length
    return limit if limit < UNSET_MODEL_MAX_LENGTH else DEFAULT_SEQ2SEQ_CONTEXT


def model_costs(model_dir: Path, counts: TokenCounts,
                icl_tokens: dict[tuple[str, str], int] | None = None) -> pd.DataFrame:
    """Cost rows for a run's own model: T-Few, zero-shot and ICL for an encoder-decoder, ICL for a decoder.

    ICL token counts come from `icl_tokens` (medians of `tfew icl` prediction files, keyed by model name and
    method) when they cover this model; otherwise the concatenation holds the demonstrations that fit in the
    model's context.
    """
    from tfew.models import read_model_identity

    model = model_on_meta(model_dir)
    kind = kind_of(model)
    name = read_model_identity(model_dir)["model_name"]
    label = str(model_dir)
    target = counts.example_target_tokens if kind == ENCODER_DECODER else 0
    icl_tokens = {method: tokens for (model, method), tokens in (icl_tokens or {}).items() if model == name}

    fitting = fitting_demonstrations(counts, model_context(model_dir, model))
    concat = icl_tokens.get("icl-concat", fitting * counts.demonstration_tokens + counts.example_tokens)
    ensemble = icl_tokens.get("icl-ensemble", counts.icl_ensemble_tokens)
    from_files, from_data = "median of the ICL prediction files", "medians of the data files"
    passes = max(1, counts.demonstrations)
    per_pass = max(ensemble // passes, target + 1)
    concat_source = (f"tokens per prediction: {from_files}" if "icl-concat" in icl_tokens else
                     f"tokens per prediction: {from_data}; {fitting} of {counts.demonstrations} demonstrations fit")
    ensemble_source = f"tokens per prediction: {from_files if 'icl-ensemble' in icl_tokens else from_data}"
    rows = [
        method_row("icl-concat", name, label, model, concat, 0.0, counts.icl_disk_bytes,
                   measure_inference(model, concat, target), None, concat_source),
        method_row("icl-ensemble", name, label, model, ensemble, 0.0, counts.icl_disk_bytes,
                   measure_inference(model, per_pass, target, passes), None,
                   f"{ensemble_source}; {passes} forward passes per prediction"),
    ]
    if kind == DECODER_ONLY:
        return pd.DataFrame(rows, columns=COLUMNS)

    _, non_embedding = count_parameters(model)
    training = formula_flops_per_token(kind, non_embedding, training=True) * counts.steps * counts.batch_size * counts.example_tokens
    zero_shot = method_row("t0-zero-shot", name, label, model, counts.example_tokens, 0.0, 0.0,
                           measure_inference(model, counts.example_tokens, target), None, f"tokens: {from_data}")
    vectors = ia3_parameters(model)  # wraps the model in place, so the T-Few measurements include (IA)^3
    tfew = method_row(
        "t-few", name, label, model, counts.example_tokens, training, vectors * counts.bytes_per_parameter,
        measure_inference(model, counts.example_tokens, target), measure_training(model, counts),
        f"(IA)^3 vectors: {vectors} parameters; {counts.steps} steps x batch {counts.batch_size}; tokens: {from_data}",
    )
    return pd.DataFrame([tfew, zero_shot, *rows], columns=COLUMNS)
