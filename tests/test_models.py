"""The tiny T5 has T0's architecture and a tokenizer that does not map words to <unk>."""

import pytest
import torch

from tfew.models import load_seq2seq, load_tokenizer


def test_output_layer_untied(tiny_model_dir):
    model = load_seq2seq(tiny_model_dir)
    assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr()
    assert not torch.equal(model.lm_head.weight, model.shared.weight)
    assert model.config.tie_word_embeddings is False


def test_gated_gelu_feed_forward(tiny_model_dir):
    model = load_seq2seq(tiny_model_dir)
    feed_forward = model.encoder.block[0].layer[1].DenseReluDense
    assert hasattr(feed_forward, "wi_0") and hasattr(feed_forward, "wi_1")
    assert model.config.feed_forward_proj == "gated-gelu"


def test_tokenizer_knows_task_words(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    ids = tokenizer("Does this imply that the premise is true?", add_special_tokens=False).input_ids
    unknown = sum(token == tokenizer.unk_token_id for token in ids)
    assert unknown == 0
    assert tokenizer("yes").input_ids[-1] == tokenizer.eos_token_id


def test_same_seed_same_weights(rte_data, tmp_path):
    from tfew.models import TinyT5Shape, build_tiny_t5

    first = build_tiny_t5(TinyT5Shape(), vocab_size=500, seed=3)
    second = build_tiny_t5(TinyT5Shape(), vocab_size=500, seed=3)
    assert torch.equal(first.lm_head.weight, second.lm_head.weight)


def test_input_embeddings_shared(tiny_model_dir):
    model = load_seq2seq(tiny_model_dir)
    shared = model.shared.weight.data_ptr()
    assert model.encoder.embed_tokens.weight.data_ptr() == shared
    assert model.decoder.embed_tokens.weight.data_ptr() == shared


def test_checkpoint_with_only_shared_embedding_loads(tmp_path):
    from safetensors.torch import load_file, save_file

    from tfew.models import TinyT5Shape, build_tiny_t5

    model = build_tiny_t5(TinyT5Shape(), vocab_size=500, seed=1)
    model.save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    weights.pop("encoder.embed_tokens.weight", None)
    weights.pop("decoder.embed_tokens.weight", None)
    save_file(weights, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})

    loaded = load_seq2seq(tmp_path)
    assert torch.equal(loaded.encoder.embed_tokens.weight, model.shared.weight)
    assert torch.equal(loaded.decoder.embed_tokens.weight, model.shared.weight)
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)


def test_checkpoint_missing_weight_rejected(tmp_path):
    from safetensors.torch import load_file, save_file

    from tfew.errors import TfewError
    from tfew.models import TinyT5Shape, build_tiny_t5

    build_tiny_t5(TinyT5Shape(), vocab_size=500, seed=1).save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    weights.pop("lm_head.weight")
    save_file(weights, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})

    with pytest.raises(TfewError) as error:
        load_seq2seq(tmp_path)
    assert "lm_head.weight" in str(error.value)
    assert str(tmp_path) in str(error.value)


def test_load_report_not_printed(tiny_model_dir):
    """transformers' report would call the tied input embeddings newly initialized, which misleads."""
    import logging

    # transformers' own logger does not propagate, so the test listens to it directly.
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    transformers_logger = logging.getLogger("transformers")
    transformers_logger.addHandler(handler)
    try:
        load_seq2seq(tiny_model_dir)
    finally:
        transformers_logger.removeHandler(handler)
    assert not [record for record in records if "LOAD REPORT" in record.getMessage()]
    assert not [record.getMessage() for record in records if record.levelno >= logging.WARNING]
