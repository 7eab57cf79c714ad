"""(IA)^3 formats: own format, PEFT export and import, the official T-Few checkpoint, `tfew ia3` commands."""

import copy
import json

import pytest
import torch
from ia3_helpers import adapted_and_copy, logits, scale_with_hooks, tiny_t5, token_batch

from tfew.cli import main
from tfew.errors import TfewError
from tfew.ia3 import add_ia3
from tfew.ia3_formats import convert, read_official, read_peft, resolve_base_config
from tfew.models import load_seq2seq
from tfew.vectors_io import load_vectors, metadata_path, save_vectors

OFFICIAL_CHECKPOINT = "checkpoints/t03b_ia3_finish.pt"
OFFICIAL_SHA256 = "431451f16e8fc849a772952c9183d5dc63909282444192a70584d661cecb5374"


def saved_tiny_model(folder, gated=True):
    """Save a tiny T5 as a model folder that `--base-config` and `from_pretrained` both accept."""
    model = tiny_t5(gated)
    model.save_pretrained(folder)
    return folder


def test_own_format_round_trip(tmp_path):
    model, ia3 = adapted_and_copy(seed=1)[:2]
    path = tmp_path / "vectors.safetensors"
    save_vectors(path, ia3.vectors(), {"base_model": "tiny-t5", "base_revision": "0", "task": "rte"})

    vectors, info = load_vectors(path)
    fresh = tiny_t5()
    fresh_ia3 = add_ia3(fresh)
    fresh_ia3.load_vectors(vectors)

    batch = token_batch()
    assert torch.equal(logits(fresh, batch), logits(model, batch))
    assert info["format"] == "tfew-ia3"
    assert (info["base_model"], info["base_revision"], info["task"]) == ("tiny-t5", "0", "rte")
    assert info["vectors"] == {name: [layer.width] for name, layer in ia3.layers.items()}


def test_own_format_metadata_survives_without_json(tmp_path):
    _, ia3 = adapted_and_copy(seed=1)[:2]
    path = tmp_path / "vectors.safetensors"
    save_vectors(path, ia3.vectors(), {"base_model": "tiny-t5", "base_revision": "0"})
    metadata_path(path).unlink()
    vectors, info = load_vectors(path)
    assert info["base_model"] == "tiny-t5"
    assert torch.equal(vectors["encoder.block.0.layer.0.SelfAttention.k"], ia3.vectors()["encoder.block.0.layer.0.SelfAttention.k"])


def test_own_format_metadata_mismatch_raises(tmp_path):
    _, ia3 = adapted_and_copy(seed=1)[:2]
    path = tmp_path / "vectors.safetensors"
    save_vectors(path, ia3.vectors(), {"base_model": "tiny-t5", "base_revision": "0"})
    info = json.loads(metadata_path(path).read_text())
    info["vectors"]["encoder.block.0.layer.0.SelfAttention.k"] = [7]
    metadata_path(path).write_text(json.dumps(info))
    with pytest.raises(TfewError, match=r"encoder.block.0.layer.0.SelfAttention.k has shape \[32\] but its metadata says \[7\]"):
        load_vectors(path)


def peft_copy(model, vectors):
    """PEFT's IA3 on a copy of `model` with the same vectors (input scales on `wo`, output scales on k and v)."""
    from peft import IA3Config, get_peft_model

    config = IA3Config(task_type="SEQ_2_SEQ_LM", target_modules=["k", "v", "wo"], feedforward_modules=["wo"])
    peft_model = get_peft_model(copy.deepcopy(model), config)
    for name, module in peft_model.base_model.model.named_modules():
        if name in vectors:
            parameter = module.ia3_l["default"]
            parameter.data.copy_(vectors[name].reshape(parameter.shape))
    return peft_model.eval()


@pytest.mark.parametrize("gated", [True, False], ids=["gated", "non-gated"])
def test_peft_ia3_logits_equal(gated):
    ours, ia3, base = adapted_and_copy(gated, seed=2)
    peft_model = peft_copy(base, ia3.vectors())

    batch = token_batch()
    torch.testing.assert_close(logits(peft_model, batch), logits(ours, batch), rtol=0, atol=1e-5)
    assert (logits(peft_model, batch) - logits(base, batch)).abs().max() > 1e-3


def test_peft_export_loads_with_peft_model(tmp_path):
    from peft import PeftModel

    model_dir = saved_tiny_model(tmp_path / "model")
    model, ia3 = adapted_and_copy(seed=3)[:2]
    tfew_file = tmp_path / "vectors.safetensors"
    save_vectors(tfew_file, ia3.vectors(), {"base_model": "tiny-t5", "base_revision": "0"})

    peft_dir = tmp_path / "peft"
    assert main(["ia3", "convert", str(tfew_file), str(peft_dir), "--from", "tfew", "--to", "peft",
                 "--base-config", str(model_dir)]) == 0
    assert json.loads((peft_dir / "adapter_config.json").read_text())["peft_type"] == "IA3"

    peft_model = PeftModel.from_pretrained(load_seq2seq(model_dir), str(peft_dir)).eval()
    batch = token_batch()
    torch.testing.assert_close(logits(peft_model, batch), logits(model, batch), rtol=0, atol=1e-5)

    back = tmp_path / "back.safetensors"
    assert main(["ia3", "convert", str(peft_dir), str(back), "--from", "peft", "--to", "tfew",
                 "--base-config", str(model_dir)]) == 0
    vectors, info = load_vectors(back)
    assert info["source_format"] == "peft"
    for name, vector in ia3.vectors().items():
        assert torch.equal(vectors[name], vector), name


def test_peft_import_rejects_lora(tmp_path):
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(tiny_t5(), LoraConfig(task_type="SEQ_2_SEQ_LM", target_modules=["q", "v"], r=2))
    lora.save_pretrained(str(tmp_path / "lora"))
    with pytest.raises(TfewError, match="LORA adapter, not IA3"):
        read_peft(tmp_path / "lora")


def official_style_checkpoint(model, seed):
    """Random T-Few-style `*.multi_lora_b` tensors for a tiny model: k and v outputs and `wi_1` outputs."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, module in model.named_modules():
        if name.endswith(("SelfAttention.k", "SelfAttention.v", "EncDecAttention.k", "EncDecAttention.v", "DenseReluDense.wi_1")):
            state[f"{name}.multi_lora_b"] = 0.5 + torch.rand(module.out_features, 1, generator=generator)
    return state


def test_official_format_means_wi_1_output_scaling(tmp_path):
    model_dir = saved_tiny_model(tmp_path / "model")
    reference = tiny_t5()
    state = official_style_checkpoint(reference, seed=4)
    torch.save(state, tmp_path / "finish.pt")

    out = tmp_path / "converted.safetensors"
    assert main(["ia3", "convert", str(tmp_path / "finish.pt"), str(out), "--from", "t-few", "--to", "tfew",
                 "--base-config", str(model_dir)]) == 0
    vectors, _ = load_vectors(out)
    assert torch.equal(
        vectors["decoder.block.1.layer.2.DenseReluDense.wo"],
        state["decoder.block.1.layer.2.DenseReluDense.wi_1.multi_lora_b"].flatten(),
    )

    model = tiny_t5()
    add_ia3(model).load_vectors(vectors)
    hooks = {name.removesuffix(".multi_lora_b"): tensor.flatten() for name, tensor in state.items()}
    # scale_with_hooks expects `wo` names for the feed-forward vector and puts it back on `wi_1` in gated blocks.
    scale_with_hooks(reference, {name.replace("wi_1", "wo"): vector for name, vector in hooks.items()})
    batch = token_batch()
    torch.testing.assert_close(logits(model, batch), logits(reference, batch), rtol=0, atol=1e-5)


def test_official_wi_1_on_non_gated_base_raises(tmp_path):
    model_dir = saved_tiny_model(tmp_path / "model", gated=False)
    torch.save(official_style_checkpoint(tiny_t5(gated=True), seed=5), tmp_path / "finish.pt")
    with pytest.raises(TfewError, match="wi_1.*non-gated"):
        convert(tmp_path / "finish.pt", tmp_path / "out.safetensors", "t-few", "tfew", str(model_dir))


def test_non_finite_vector_rejected(tmp_path):
    model_dir = saved_tiny_model(tmp_path / "model")
    state = official_style_checkpoint(tiny_t5(), seed=6)
    state["decoder.block.0.layer.1.EncDecAttention.v.multi_lora_b"][3, 0] = float("nan")
    torch.save(state, tmp_path / "finish.pt")
    with pytest.raises(TfewError, match="EncDecAttention.v.multi_lora_b contains NaN"):
        convert(tmp_path / "finish.pt", tmp_path / "out.safetensors", "t-few", "tfew", str(model_dir))


def test_official_checkpoint_rejects_other_tensors(tmp_path):
    torch.save({"encoder.block.0.layer.0.SelfAttention.k.lora_a": torch.ones(2, 4)}, tmp_path / "lora.pt")
    with pytest.raises(TfewError, match="lora_a"):
        read_official(tmp_path / "lora.pt")


def test_official_t0_3b_checkpoint_converts(mirror, tmp_path):
    source = mirror / OFFICIAL_CHECKPOINT
    out = tmp_path / "t0_3b.safetensors"
    assert main(["ia3", "convert", str(source), str(out), "--from", "t-few", "--to", "tfew", "--base-config", "t0-3b"]) == 0

    raw = torch.load(source, weights_only=True)
    vectors, info = load_vectors(out)
    assert len(vectors) == 192
    assert sum(vector.numel() for vector in vectors.values()) == 540_672
    assert info["base_model"] == "bigscience/T0_3B"
    assert info["source_sha256"] == OFFICIAL_SHA256
    assert torch.equal(vectors["encoder.block.0.layer.0.SelfAttention.k"], raw["encoder.block.0.layer.0.SelfAttention.k.multi_lora_b"].flatten())
    assert torch.equal(vectors["decoder.block.23.layer.2.DenseReluDense.wo"], raw["decoder.block.23.layer.2.DenseReluDense.wi_1.multi_lora_b"].flatten())

    peft_dir = tmp_path / "peft"
    back = tmp_path / "back.safetensors"
    assert main(["ia3", "convert", str(out), str(peft_dir), "--from", "tfew", "--to", "peft", "--base-config", "t0-3b"]) == 0
    assert main(["ia3", "convert", str(peft_dir), str(back), "--from", "peft", "--to", "tfew", "--base-config", "t0-3b"]) == 0
    round_trip, _ = load_vectors(back)
    assert all(torch.equal(round_trip[name], vector) for name, vector in vectors.items())


def test_official_checkpoint_wrong_base_config_names_tensor(mirror, tmp_path, capsys):
    status = main(["ia3", "convert", str(mirror / OFFICIAL_CHECKPOINT), str(tmp_path / "out.safetensors"),
                   "--from", "t-few", "--to", "tfew", "--base-config", "t0-11b"])
    error = capsys.readouterr().err
    assert status == 2
    assert "encoder.block.0.layer.0.SelfAttention.k.multi_lora_b has shape [2048, 1]" in error
    assert "t0-11b expects [4096, 1]" in error
    assert not (tmp_path / "out.safetensors").exists()


def test_count_command_prints_t0_11b_total(capsys):
    assert main(["ia3", "count", "--base-config", "t0-11b"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "total_trainable_parameters=1081344"
    assert any(line.split()[:4] == ["decoder.EncDecAttention.v", "24", "4096", "98,304"] for line in lines)


def test_unknown_base_config_raises():
    with pytest.raises(TfewError, match="not a preset"):
        resolve_base_config("t0-7b")
