"""(IA)^3 layers: targets on gated and non-gated T5, equivalence with hook-based scaling, counts, routing."""

import copy
import re

import pytest
import torch
from ia3_helpers import adapted_and_copy, logits, randomize, scale_with_hooks, tiny_t5, token_batch

from tfew.errors import TfewError
from tfew.ia3 import T5_TARGETS, add_ia3, module_type
from tfew.ia3_formats import meta_ia3, resolve_base_config

ATTENTION_LAYER = re.compile(r"(SelfAttention|EncDecAttention)\.[kv]$")


@pytest.mark.parametrize("gated", [True, False], ids=["gated", "non-gated"])
def test_targets_cover_keys_values_and_ff(gated):
    model = tiny_t5(gated)
    expected = {
        name for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and (ATTENTION_LAYER.search(name) or name.endswith("DenseReluDense.wo"))
    }
    ia3 = add_ia3(model)

    assert set(ia3.layers) == expected
    assert len(expected) == 2 * 3 + 2 * 5  # encoder blocks: k, v, wo; decoder blocks: self k, v, cross k, v, wo
    for name, layer in ia3.layers.items():
        group = ia3.groups[name]
        assert group == ("ff" if name.endswith(".wo") else name[-1])
        assert layer.scale_input == (group == "ff")
        assert layer.width == (model.config.d_ff if group == "ff" else model.config.num_heads * model.config.d_kv)


@pytest.mark.parametrize("gated", [True, False], ids=["gated", "non-gated"])
def test_backbone_frozen_and_vectors_start_at_ones(gated):
    model = tiny_t5(gated)
    ia3 = add_ia3(model, ["rte", "cb"])

    trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    assert trainable and all(name.endswith("ia3_vectors") for name in trainable)
    assert len(trainable) == len(ia3.trainable_parameters())
    for layer in ia3.layers.values():
        assert layer.ia3_vectors.shape[0] == 2
        assert torch.equal(layer.ia3_vectors, torch.ones_like(layer.ia3_vectors))


@pytest.mark.parametrize("gated", [True, False], ids=["gated", "non-gated"])
def test_identity_at_init(gated):
    model = tiny_t5(gated)
    reference = copy.deepcopy(model)
    batch = token_batch()
    add_ia3(model)
    assert torch.equal(logits(model, batch), logits(reference, batch))


@pytest.mark.parametrize("gated", [True, False], ids=["gated", "non-gated"])
def test_vectors_equal_hook_scaling(gated):
    model, ia3, reference = adapted_and_copy(gated, seed=1)
    scale_with_hooks(reference, ia3.vectors())
    batch = token_batch()

    torch.testing.assert_close(logits(model, batch), logits(reference, batch), rtol=0, atol=1e-5)
    assert not torch.allclose(logits(model, batch), logits(tiny_t5(gated), batch), atol=1e-3)


def test_ff_scaling_commutes_with_dropout():
    """Dropout sits between the gate product and `wo`; scaling either side of it gives the same output."""
    model = tiny_t5(gated=True).train()
    reference = copy.deepcopy(model)
    ia3 = add_ia3(model)
    randomize(ia3, seed=2)
    ff_only = {name: vector for name, vector in ia3.vectors().items() if ia3.groups[name] == "ff"}
    for name, layer in ia3.layers.items():
        if ia3.groups[name] != "ff":
            layer.ia3_vectors.data.fill_(1.0)
    scale_with_hooks(reference, ff_only)
    input_ids, attention_mask, decoder_input_ids = token_batch()

    outputs = []
    for candidate in (model, reference):
        torch.manual_seed(5)
        with torch.no_grad():
            outputs.append(candidate(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("group", ["k", "v", "ff"])
def test_each_vector_type_changes_output(group):
    model = tiny_t5()
    ia3 = add_ia3(model)
    batch = token_batch()
    before = logits(model, batch)
    for name, layer in ia3.layers.items():
        if ia3.groups[name] == group:
            layer.ia3_vectors.data.mul_(1.7)
    assert (logits(model, batch) - before).abs().max() > 1e-4


def test_wi_1_pattern_on_non_gated_t5_raises():
    model = tiny_t5(gated=False)
    targets = {**T5_TARGETS, "ff": (r"DenseReluDense\.wi_1$", False)}
    with pytest.raises(TfewError) as error:
        add_ia3(model, targets=targets)
    message = str(error.value)
    assert r"DenseReluDense\.wi_1$" in message
    assert "T5ForConditionalGeneration" in message


def test_second_add_ia3_rejected():
    model = tiny_t5()
    add_ia3(model)
    with pytest.raises(TfewError, match="already has"):
        add_ia3(model)


def test_unknown_model_type_needs_targets():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(TfewError, match="no default"):
        add_ia3(model)


def test_t0_3b_counts_on_meta_device():
    ia3 = meta_ia3(resolve_base_config("t0-3b"))
    assert ia3.parameter_counts() == {"k": 147_456, "v": 147_456, "ff": 245_760, "total": 540_672}
    assert all(parameter.device.type == "meta" for parameter in ia3.model.parameters())
    table = ia3.parameter_counts_by_module()
    assert table["decoder.EncDecAttention.k"] == {"layers": 24, "width": 2048, "parameters": 49_152}
    assert table["encoder.DenseReluDense.wo"] == {"layers": 24, "width": 5120, "parameters": 122_880}
    assert sum(row["parameters"] for row in table.values()) == 540_672


def test_t0_11b_counts_on_meta_device():
    ia3 = meta_ia3(resolve_base_config("t0-11b"))
    # Liu et al. 2022: L(dk + dv + dff) per encoder block plus L(2dk + 2dv + dff) per decoder block.
    assert ia3.parameter_counts()["total"] == 24 * (4096 * 2 + 10240) + 24 * (4096 * 4 + 10240) == 1_081_344
    assert ia3.parameter_counts()["ff"] == 48 * 10240


def test_module_type_drops_block_indices():
    assert module_type("decoder.block.11.layer.1.EncDecAttention.v") == "decoder.EncDecAttention.v"
    assert module_type("encoder.block.0.layer.1.DenseReluDense.wo") == "encoder.DenseReluDense.wo"


def test_mixed_task_forward_equals_each_task_alone():
    model = tiny_t5()
    ia3 = add_ia3(model, ["rte", "cb", "copa"])
    randomize(ia3, seed=3)
    input_ids, attention_mask, decoder_input_ids = token_batch(examples=3)
    tasks = ["cb", "copa", "cb"]

    ia3.route(ia3.task_ids(tasks))
    mixed = logits(model, (input_ids, attention_mask, decoder_input_ids))
    ia3.route(None)
    for row, task in enumerate(tasks):
        ia3.use_task(task)
        alone = logits(model, (input_ids[row : row + 1], attention_mask[row : row + 1], decoder_input_ids[row : row + 1]))
        torch.testing.assert_close(mixed[row : row + 1], alone, rtol=0, atol=1e-5)


def test_mixed_task_gradients_reach_only_present_tasks():
    model = tiny_t5()
    ia3 = add_ia3(model, ["rte", "cb", "copa"])
    randomize(ia3, seed=4)
    input_ids, attention_mask, decoder_input_ids = token_batch(examples=3)
    ia3.route(ia3.task_ids(["rte", "copa", "rte"]))
    model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits.square().mean().backward()

    for layer in ia3.layers.values():
        gradient = layer.ia3_vectors.grad
        assert gradient[0].abs().sum() > 0
        assert gradient[2].abs().sum() > 0
        assert torch.equal(gradient[1], torch.zeros_like(gradient[1]))


def test_route_rejects_unknown_task_id():
    ia3 = add_ia3(tiny_t5(), ["rte", "cb"])
    with pytest.raises(TfewError, match="out of range"):
        ia3.route(torch.tensor([0, 2]))
    with pytest.raises(TfewError, match="no .IA.\\^3 vectors for task 'wic'"):
        ia3.use_task("wic")


def test_load_vectors_checks_names_and_widths():
    ia3 = add_ia3(tiny_t5(), ["rte", "cb"])
    vectors = ia3.vectors("rte")
    first = next(iter(vectors))

    vectors_with_extra = {**vectors, "encoder.block.9.layer.0.SelfAttention.k": vectors[first]}
    with pytest.raises(TfewError, match="unexpected"):
        ia3.load_vectors(vectors_with_extra)
    with pytest.raises(TfewError, match=re.escape(first)):
        ia3.load_vectors({**vectors, first: torch.ones(3)})

    changed = {name: vector * 1.25 for name, vector in vectors.items()}
    ia3.load_vectors(changed, "cb")
    assert torch.equal(ia3.vectors("cb")[first], changed[first])
    assert torch.equal(ia3.vectors("rte")[first], vectors[first])
