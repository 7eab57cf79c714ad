"""Backbones: the tiny random T5 with T0's architecture for demos and tests, and hub snapshots for real runs.

T0 is T5 v1.1 (LM-adapted) fine-tuned on prompts: gated-GELU feed-forward blocks and an output layer that is
not tied to the input embedding, with no rescaling of decoder outputs before it. The tiny builder keeps all
three properties so that every code path a real T0 exercises is exercised here too.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tfew.errors import TfewError

log = logging.getLogger(__name__)

# T5 convention for special token ids: pad 0 (also the decoder start token), eos 1, unk 2.
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2


@dataclass
class TinyT5Shape:
    """Sizes of the tiny T5. Defaults train in seconds on one CPU core."""

    vocab_size: int = 2000  # SentencePiece unigram pieces, trained on the task text
    d_model: int = 64
    d_kv: int = 16
    d_ff: int = 128
    num_heads: int = 4
    num_layers: int = 2  # encoder blocks
    num_decoder_layers: int = 2
    dropout_rate: float = 0.1  # as in T0's config


def train_tokenizer(texts: list[str], out_dir: Path, vocab_size: int, max_length: int = 512) -> None:
    """Train a SentencePiece unigram model on `texts` and save it as a T5 tokenizer folder."""
    import sentencepiece

    if not texts:
        raise TfewError("cannot train a tokenizer on an empty text list")
    out_dir.mkdir(parents=True, exist_ok=True)

    model_bytes = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=model_bytes,
            vocab_size=vocab_size,
            model_type="unigram",
            pad_id=PAD_ID,
            eos_id=EOS_ID,
            unk_id=UNK_ID,
            bos_id=-1,
            character_coverage=1.0,
            hard_vocab_limit=False,  # a small corpus may not support the full size; fewer pieces are fine
            minloglevel=2,
        )
    except RuntimeError as error:
        # With full character coverage, every distinct character of the text needs its own piece.
        raise TfewError(f"SentencePiece could not train a vocabulary of {vocab_size} pieces ({error}); "
                        "raise --vocab-size above the number of distinct characters in the text") from None
    (out_dir / "spiece.model").write_bytes(model_bytes.getvalue())

    # `T5Tokenizer(vocab_file=...)` maps every word to <unk> under transformers 5, so the folder is loaded
    # through `from_pretrained`, which converts spiece.model correctly, and re-saved in the standard layout.
    config = {"tokenizer_class": "T5Tokenizer", "extra_ids": 0, "model_max_length": max_length}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    tokenizer = load_tokenizer(out_dir)
    tokenizer.save_pretrained(out_dir)


# Files of which a saved T5 tokenizer has at least one: SentencePiece's model, or the fast tokenizer's JSON.
TOKENIZER_FILES = ("spiece.model", "tokenizer.json")


def require_model_dir(path: Path, needs_config: bool = True) -> Path:
    """Return `path` when it is a folder with a model config; raise an error naming the fix otherwise.

    transformers treats a path that is not a folder as a hub repository id and fails with an unrelated message.
    """
    path = Path(path)
    if not path.is_dir():
        raise TfewError(f"model folder not found: {path}; build one with `tfew model tiny` or `tfew model download`")
    if needs_config and not (path / "config.json").is_file():
        raise TfewError(f"no model in {path}: config.json is missing; build one with `tfew model tiny` or "
                        "`tfew model download`")
    return path


def load_tokenizer(path: Path):
    """Load a tokenizer from a model folder and check that it does not map ordinary words to <unk>."""
    from transformers import AutoTokenizer

    # The tokenizer is loaded once before the model is saved beside it, so config.json is not required here.
    path = require_model_dir(path, needs_config=False)
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        require_model_dir(path)
        raise TfewError(f"no tokenizer in {path}: expected one of {', '.join(TOKENIZER_FILES)}; save the "
                        "tokenizer beside the model, as `tfew model tiny` and `tfew model download` do")
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    probe = tokenizer("the answer is yes", add_special_tokens=False).input_ids
    if probe and all(token == tokenizer.unk_token_id for token in probe if token != 3):
        raise TfewError(f"tokenizer at {path} maps ordinary words to <unk>; rebuild it with `tfew model tiny`")
    return tokenizer


def build_tiny_t5(shape: TinyT5Shape, vocab_size: int, seed: int):
    """Build a randomly initialised T5 with T0's architecture (gated-GELU, untied output layer)."""
    from transformers import T5Config, T5ForConditionalGeneration

    params = asdict(shape)
    params["vocab_size"] = vocab_size
    config = T5Config(
        **params,
        feed_forward_proj="gated-gelu",
        decoder_start_token_id=PAD_ID,
        pad_token_id=PAD_ID,
        eos_token_id=EOS_ID,
        tie_word_embeddings=False,
    )
    # transformers 5 ignores tie_word_embeddings=False in the constructor (it only turns off the output
    # rescaling), so the attribute is set again here; without it the output layer shares the embedding.
    config.tie_word_embeddings = False

    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config)
    tie_input_embeddings(model)
    check_untied(model)
    return model


def tie_input_embeddings(model) -> None:
    """Make the encoder and decoder read their input embeddings from `shared`, as in every T5 checkpoint.

    With tie_word_embeddings=False, transformers 5 unties these too, which gives two extra random matrices on
    a new model and, for checkpoints that store only `shared.weight`, random input embeddings after loading.
    """
    model.set_input_embeddings(model.shared)


def check_untied(model) -> None:
    """Raise when a model meant to mirror T0 shares its output layer with the input embedding."""
    if model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr():
        raise TfewError("the output layer is tied to the input embedding; T0 keeps them separate")


def build_tiny_model(texts: list[str], out_dir: Path, shape: TinyT5Shape, seed: int) -> None:
    """Train the tokenizer on `texts`, build the tiny T5 and save both to `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    train_tokenizer(texts, out_dir, shape.vocab_size)
    tokenizer = load_tokenizer(out_dir)
    model = build_tiny_t5(shape, vocab_size=len(tokenizer), seed=seed)
    model.save_pretrained(out_dir)
    info = {"kind": "tiny-t5", "seed": seed, "shape": asdict(shape), "vocab_size": len(tokenizer)}
    (out_dir / "tfew_model.json").write_text(json.dumps(info, indent=2))
    log.info("built tiny T5 (%d parameters, vocabulary %d) in %s", model.num_parameters(), len(tokenizer), out_dir)


# Keys that a T5 checkpoint may omit because they are the same tensor as `shared.weight`: safetensors stores a
# shared tensor once. tie_input_embeddings re-ties them after loading, so their absence loses nothing.
TIED_INPUT_EMBEDDING_KEYS = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}


def load_seq2seq(path: Path, dtype: torch.dtype = torch.float32):
    """Load a T5-family model, keeping the output layer untied when its saved config sets tie_word_embeddings=False.

    Raises when the checkpoint lacks any weight other than the tied input embeddings, because transformers
    fills such weights with random values and only logs a warning.
    """
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    path = require_model_dir(path)
    config_file = path / "config.json"
    config = AutoConfig.from_pretrained(str(path))
    saved = json.loads(config_file.read_text())
    if saved.get("tie_word_embeddings") is False:
        # Same transformers 5 behaviour as in build_tiny_t5: the saved flag is not applied on load.
        config.tie_word_embeddings = False

    # transformers logs its load report as a warning that calls the tied input embeddings "newly initialized",
    # which is untrue once they are re-tied below. A filter drops that one record, and check_loading_info checks
    # the same information. Raising the logger's level instead would change what transformers does: it runs an
    # extra tensor-parallel check, with its own warning, when that level is WARNING or above.
    report_logger = logging.getLogger("transformers.modeling_utils")
    report_logger.addFilter(drop_load_report)
    try:
        model, loading_info = AutoModelForSeq2SeqLM.from_pretrained(
            str(path), config=config, dtype=dtype, output_loading_info=True
        )
    finally:
        report_logger.removeFilter(drop_load_report)
    check_loading_info(loading_info, path)

    if hasattr(model, "shared"):
        tie_input_embeddings(model)
    return model


def drop_load_report(record: logging.LogRecord) -> bool:
    """Return False for transformers' load report, so that the logger drops it, and True for any other record."""
    return "LOAD REPORT" not in record.getMessage()


def check_loading_info(loading_info: dict, path: Path) -> None:
    """Raise on weights missing from a checkpoint (tied input embeddings aside); log unexpected ones."""
    missing = sorted(set(loading_info.get("missing_keys", [])) - TIED_INPUT_EMBEDDING_KEYS)
    if missing:
        listed = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise TfewError(
            f"the checkpoint in {path} has no weights for {listed}; transformers would fill them with random values. "
            "Check that config.json matches the weight files, or download the model again with `tfew model download`"
        )

    unexpected = sorted(loading_info.get("unexpected_keys", []))
    if unexpected:
        log.warning("%s: %d checkpoint weights match no parameter of the model and were ignored: %s",
                    path, len(unexpected), ", ".join(unexpected[:5]))


def read_model_identity(path: Path) -> dict:
    """Return the model name and revision recorded next to a prepared model, for provenance."""
    info_file = Path(path) / "tfew_model.json"
    if info_file.is_file():
        info = json.loads(info_file.read_text())
        return {"model_name": info.get("name", info.get("kind", str(path))), "model_revision": str(info.get("revision", info.get("seed", "")))}
    return {"model_name": str(path), "model_revision": ""}
