"""Tiny T5 builders and non-identity (IA)^3 vectors shared by the (IA)^3, scoring and format tests."""

from __future__ import annotations

import copy

import torch

from tfew.models import TinyT5Shape, build_tiny_t5

VOCAB_SIZE = 120


def tiny_t5(gated: bool = True, seed: int = 0):
    """A tiny T5 in eval mode: gated-GELU and untied like T0, or ReLU with a single `wi` like the original T5."""
    shape = TinyT5Shape(d_model=32, d_kv=8, d_ff=48, num_heads=4)
    if gated:
        return build_tiny_t5(shape, vocab_size=VOCAB_SIZE, seed=seed).eval()

    from dataclasses import asdict

    from transformers import T5Config, T5ForConditionalGeneration

    # The original T5 also ties its output layer to the input embedding and rescales decoder outputs.
    config = T5Config(**{**asdict(shape), "vocab_size": VOCAB_SIZE}, feed_forward_proj="relu", decoder_start_token_id=0)
    torch.manual_seed(seed)
    return T5ForConditionalGeneration(config).eval()


def randomize(ia3, seed: int = 0, low: float = 0.5, high: float = 1.5) -> None:
    """Fill every task's vectors with values drawn uniformly from [low, high), so no vector is the identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in ia3.layers.values():
            layer.ia3_vectors.copy_(low + (high - low) * torch.rand(layer.ia3_vectors.shape, generator=generator))


def adapted_and_copy(gated: bool = True, seed: int = 0):
    """A tiny T5 with non-identity (IA)^3 vectors, its IA3Model, and an unadapted copy of the same weights."""
    from tfew.ia3 import add_ia3

    model = tiny_t5(gated)
    untouched = copy.deepcopy(model)
    ia3 = add_ia3(model)
    randomize(ia3, seed=seed)
    return model, ia3, untouched


def token_batch(seed: int = 0, examples: int = 3, length: int = 7, target_length: int = 5):
    """Random encoder and decoder ids, with padding on the second example's input."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, VOCAB_SIZE, (examples, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    input_ids[1, length - 2 :] = 0
    attention_mask[1, length - 2 :] = 0
    decoder_input_ids = torch.randint(3, VOCAB_SIZE, (examples, target_length), generator=generator)
    decoder_input_ids[:, 0] = 0
    return input_ids, attention_mask, decoder_input_ids


def logits(model, batch) -> torch.Tensor:
    """Full-model logits for a `token_batch`, without gradients."""
    input_ids, attention_mask, decoder_input_ids = batch
    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits


def scale_with_hooks(model, vectors: dict[str, torch.Tensor]) -> None:
    """Reference implementation with forward hooks: k and v outputs, and the ff vector on `wi_1`'s output
    (where the official T-Few code puts it) in gated blocks or on `wo`'s input in non-gated blocks."""
    modules = dict(model.named_modules())
    for name, vector in vectors.items():
        feed_forward = modules[name.rsplit(".", 1)[0]]
        if name.endswith(".wo") and hasattr(feed_forward, "wi_1"):
            feed_forward.wi_1.register_forward_hook(lambda module, inputs, output, vector=vector: output * vector)
        elif name.endswith(".wo"):
            modules[name].register_forward_pre_hook(lambda module, inputs, vector=vector: (inputs[0] * vector,))
        else:
            modules[name].register_forward_hook(lambda module, inputs, output, vector=vector: output * vector)
