"""Cost accounting: the paper's Table 1 by formula and by FLOP counting on meta-device models, and the run's own models."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tfew.causal import TinyCausalShape, build_tiny_causal
from tfew.cli import main, tokenizer_texts
from tfew.costs import (
    ARCHITECTURES,
    PAPER_TABLE1,
    TokenCounts,
    build_on_meta,
    count_parameters,
    ia3_parameters,
    measure_inference,
    model_on_meta,
)
from tfew.models import load_seq2seq

TABLE1_METHODS = ["t-few", "t0-zero-shot", "t5+lm-icl", "gpt3-6.7b-icl", "gpt3-13b-icl", "gpt3-175b-icl"]


@pytest.fixture(scope="module")
def table1(tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("costs") / "table1.csv"
    assert main(["costs", "--preset", "paper-table1", "--out", str(out)]) == 0
    return pd.read_csv(out).set_index("method")


def test_table1_rows_and_columns(table1):
    assert table1.index.tolist() == TABLE1_METHODS
    for column in ("inference_flops_per_example", "training_flops", "disk_bytes"):
        assert column in table1.columns
    assert table1["source"].notna().all()


@pytest.mark.parametrize("method", TABLE1_METHODS)
def test_table1_within_five_percent(table1, method):
    published = dict(zip(("inference_flops_per_example", "training_flops", "disk_bytes"), PAPER_TABLE1[method]))
    for column, value in published.items():
        if value == 0:
            assert table1.loc[method, column] == 0, column
        else:
            assert table1.loc[method, column] == pytest.approx(value, rel=0.05), column


def test_table1_headline_values(table1):
    assert table1.loc["t-few", "inference_flops_per_example"] == pytest.approx(1.1e12, rel=0.05)
    assert table1.loc["t-few", "training_flops"] == pytest.approx(2.7e16, rel=0.05)
    assert table1.loc["t-few", "disk_bytes"] == pytest.approx(4.2e6, rel=0.05)
    assert table1.loc["t5+lm-icl", "inference_flops_per_example"] == pytest.approx(4.5e13, rel=0.05)
    assert table1.loc["gpt3-175b-icl", "inference_flops_per_example"] == pytest.approx(1.4e15, rel=0.05)


def test_measured_close_to_formula(table1):
    ratio = table1["measured_inference_flops_per_example"] / table1["inference_flops_per_example"]
    # Attention over long prompts adds FLOPs that the N-per-token rule leaves out.
    assert ratio.between(0.9, 1.25).all(), ratio.to_dict()


def test_frozen_backbone_trains_cheaper(table1):
    # No weight gradients for the frozen backbone: backward costs about one forward instead of two.
    ratio = table1.loc["t-few", "measured_training_flops"] / table1.loc["t-few", "training_flops"]
    assert 0.55 < ratio < 0.75


def test_t0_11b_ia3_parameters():
    model = build_on_meta(ARCHITECTURES["t0-11b"])
    assert ia3_parameters(model) == 1_081_344


def test_t0_3b_ia3_parameters():
    model = build_on_meta(ARCHITECTURES["t0-3b"])
    assert ia3_parameters(model) == 540_672


def test_paper_token_counts():
    counts = TokenCounts()
    assert counts.icl_concat_tokens == 41 * 98 + 103
    assert counts.icl_disk_bytes == 16_072


def test_meta_counts_match_real_model(tiny_model_dir):
    real = load_seq2seq(tiny_model_dir).eval()
    meta = model_on_meta(tiny_model_dir)
    assert count_parameters(meta) == count_parameters(real)
    total, non_embedding = count_parameters(real)
    # Every embedding table (token embeddings, relative position biases) plus the output layer, each once.
    tables = {id(module.weight): module.weight.numel() for module in real.modules() if isinstance(module, torch.nn.Embedding)}
    tables[id(real.lm_head.weight)] = real.lm_head.weight.numel()
    assert non_embedding == total - sum(tables.values())

    # Gated-GELU T5 by hand: attention projections, three feed-forward matrices, layer norms.
    config = real.config
    d, inner, d_ff = config.d_model, config.d_kv * config.num_heads, config.d_ff
    encoder_layer = 4 * d * inner + 3 * d * d_ff + 2 * d
    decoder_layer = 8 * d * inner + 3 * d * d_ff + 3 * d
    assert non_embedding == config.num_layers * encoder_layer + config.num_decoder_layers * decoder_layer + 2 * d

    # On real CPU tensors SDPA runs a fused kernel that the counter does not see; eager attention is plain
    # matrix products, as SDPA decomposes to on the meta device.
    real.set_attn_implementation("eager")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        real(input_ids=torch.ones((1, 90), dtype=torch.long), decoder_input_ids=torch.ones((1, 6), dtype=torch.long))
    assert measure_inference(meta, 96, 6) == counter.get_total_flops()


@pytest.fixture(scope="module")
def causal_model_dir(rte_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_causal")
    texts = tokenizer_texts([rte_data / "eval.jsonl", rte_data / "few_shot_seed0.jsonl"])
    build_tiny_causal(texts, out, TinyCausalShape(vocab_size=1000), seed=0)
    return out


def test_run_model_costs(tiny_model_dir, causal_model_dir, rte_data, tmp_path):
    out = tmp_path / "model_costs.csv"
    arguments = [
        "costs", "--model", str(tiny_model_dir), str(causal_model_dir), "--data", str(rte_data / "eval.jsonl"),
        "--train", str(rte_data / "few_shot_seed0.jsonl"), "--steps", "30", "--batch-size", "4", "--out", str(out),
    ]
    assert main(arguments) == 0
    table = pd.read_csv(out)
    assert table["method"].tolist() == ["t-few", "t0-zero-shot", "icl-concat", "icl-ensemble", "icl-concat", "icl-ensemble"]
    assert table["model"].tolist()[:4] == ["tiny-t5"] * 4
    assert table["model"].tolist()[4:] == ["tiny-gpt2"] * 2
    assert (table["measured_inference_flops_per_example"] > 0).all()
    assert table["paper_inference_flops_per_example"].isna().all()

    t_few = table.iloc[0]
    assert t_few["training_flops"] == pytest.approx(
        3 * t_few["non_embedding_parameters"] * 30 * 4 * t_few["tokens_per_example"]
    )
    assert t_few["disk_bytes"] == 4 * ia3_parameters(load_seq2seq(tiny_model_dir))
    concat, ensemble = table.iloc[2], table.iloc[3]
    assert concat["tokens_per_example"] <= 512
    assert ensemble["tokens_per_example"] > concat["tokens_per_example"]
    causal_concat = table.iloc[4]
    assert causal_concat["inference_flops_per_example"] == 2 * causal_concat["non_embedding_parameters"] * causal_concat["tokens_per_example"]


def test_icl_tokens_from_predictions(tiny_model_dir, causal_model_dir, rte_data, tmp_path):
    predictions = tmp_path / "icl.csv"
    status = main([
        "icl", "--model", str(tiny_model_dir), "--data", str(rte_data / "eval.jsonl"),
        "--train", str(rte_data / "few_shot_seed0.jsonl"), "--task", "rte", "--seed", "0", "--mode", "concat",
        "--max-examples", "1", "--threads", "1", "--out", str(predictions),
    ])
    assert status == 0
    out = tmp_path / "costs.csv"
    arguments = ["costs", "--model", str(tiny_model_dir), str(causal_model_dir), "--icl-predictions", str(predictions),
                 "--out", str(out)]
    assert main(arguments) == 0
    table = pd.read_csv(out)
    concat = table[table["method"] == "icl-concat"].set_index("model")
    expected = int(pd.read_csv(predictions)["tokens_per_prediction"].median())
    assert concat.loc["tiny-t5", "tokens_per_example"] == expected
    assert concat.loc["tiny-t5", "source"].startswith("tokens per prediction: median of the ICL prediction files")
    # The decoder-only model ran no ICL here, so its tokens come from the paper's counts, not the T5's files.
    assert concat.loc["tiny-gpt2", "source"].startswith("tokens per prediction: medians of the data files")
