"""`tfew bench scoring` and `tfew bench mixed-batch`: output format at reduced size, FLOPs on T0-3B shapes.

Timings are printed by the commands but never asserted here; docs/benchmarks.md records measured numbers.
"""

import re

from ia3_helpers import tiny_t5

from tfew.bench import BatchShape, scoring_flops
from tfew.cli import main

RATIO_LINE = re.compile(r"^flops_ratio_vs_repeated_encoder=(\d+\.\d{3})$")
RATE_LINE = re.compile(r"^(.+?)\s+(\d+\.\d) examples/s")
THROUGHPUT_LINE = re.compile(r"^mixed_over_single_task_throughput=(\d+\.\d{3})$")


def test_scoring_bench_output_at_reduced_size(tmp_path, capsys):
    tiny_t5().save_pretrained(tmp_path / "model")
    status = main(["bench", "scoring", "--base-config", str(tmp_path / "model"), "--examples", "2",
                   "--input-tokens", "12", "--choices", "2", "3", "--choice-tokens", "3"])
    lines = capsys.readouterr().out.strip().splitlines()

    assert status == 0
    assert len(lines) == 5
    assert "2 examples, 12 input tokens, 2/3 answer choices of 3 tokens" in lines[0]
    flops = {line.split()[0]: float(line.split()[1]) for line in lines[1:4]}
    assert list(flops) == ["reencode", "repeat", "shared"]
    assert flops["reencode"] > flops["repeat"] > flops["shared"] > 0
    ratio = RATIO_LINE.match(lines[-1])
    assert ratio and abs(float(ratio.group(1)) - flops["shared"] / flops["repeat"]) < 1e-3


def test_t0_3b_shared_scoring_saves_cross_attention_projections():
    shape = BatchShape(examples=8, input_tokens=103, choices=(4,), choice_tokens=8)
    flops = scoring_flops("t0-3b", shape)

    # The saving is exactly the cross-attention k and v projections of the 3 repeated copies per example:
    # 2 projections x 2 FLOPs per multiply-add x d_model x inner dim x 24 decoder layers x 24 rows x 103 tokens.
    assert flops["repeat"] - flops["shared"] == 2 * 2 * 2048 * 2048 * 24 * (32 - 8) * 103
    assert flops["shared"] / flops["repeat"] <= 0.80
    assert flops["reencode"] > flops["repeat"]


def test_mixed_batch_bench_output_at_reduced_size(capsys):
    status = main(["bench", "mixed-batch", "--examples", "8", "--tasks", "4", "--input-tokens", "16",
                   "--repeats", "2", "--choice-tokens", "4"])
    lines = capsys.readouterr().out.strip().splitlines()

    assert status == 0
    assert len(lines) == 6
    assert "8 examples over 4 tasks" in lines[0]
    rates = {match[1]: float(match[2]) for match in (RATE_LINE.match(line) for line in lines[1:4])}
    assert list(rates) == ["mixed", "single-task", "grouped per task"]
    assert all(rate > 0 for rate in rates.values())
    assert THROUGHPUT_LINE.match(lines[-1])


def test_mixed_batch_bench_rejects_uneven_split(capsys):
    assert main(["bench", "mixed-batch", "--examples", "10", "--tasks", "4", "--repeats", "1"]) == 2
    assert "multiple of --tasks 4" in capsys.readouterr().err
