"""Move (IA)^3 vectors between formats, checked against the architecture they are meant for.

Formats:
  tfew    the package's own format (`tfew.vectors_io`): safetensors plus JSON metadata.
  peft    Hugging Face PEFT's IA3 adapter folder: `adapter_config.json` + `adapter_model.safetensors`, loadable
          with `peft.PeftModel.from_pretrained(base_model, folder)`. Written and read through PEFT itself.
  t-few   the official T-Few checkpoint (e.g. `t03b_ia3_finish.pt`): a `torch.save`d dict of `*.multi_lora_b`
          tensors of shape [width, 1], read with `torch.load(weights_only=True)`. Its feed-forward vector scales
          the output of `wi_1`, which in a gated block equals scaling the input of `wo`, where this package
          and PEFT keep it.

The target architecture comes from a preset (`t0-3b`, `t0-11b`), a `config.json` or model folder, or a hub
model id. The model is built on the `meta` device, so no weights are read or allocated.

    tfew ia3 convert t03b_ia3_finish.pt out/t0_3b_ia3.safetensors --from t-few --to tfew --base-config t0-3b
    tfew ia3 convert out/t0_3b_ia3.safetensors out/t0_3b_peft --from tfew --to peft --base-config t0-3b
    tfew ia3 count --base-config t0-11b
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tfew.data import sha256_of
from tfew.errors import TfewError
from tfew.ia3 import IA3Model, add_ia3
from tfew.vectors_io import load_vectors, save_vectors

log = logging.getLogger(__name__)

# T0 is T5 v1.1 (LM-adapted) fine-tuned on prompts. These are the shapes of the hub configs of
# bigscience/T0_3B (T5 v1.1 XL) and bigscience/T0 (T5 v1.1 XXL), both gated-GELU with an untied output layer.
_T0_COMMON = {
    "model_type": "t5",
    "vocab_size": 32128,
    "d_kv": 64,
    "num_layers": 24,
    "num_decoder_layers": 24,
    "feed_forward_proj": "gated-gelu",
    "relative_attention_num_buckets": 32,
    "dropout_rate": 0.1,
    "layer_norm_epsilon": 1e-6,
    "decoder_start_token_id": 0,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "tie_word_embeddings": False,
}
ARCHITECTURES: dict[str, dict] = {
    "t0-3b": {"model_name": "bigscience/T0_3B", "config": {**_T0_COMMON, "d_model": 2048, "d_ff": 5120, "num_heads": 32}},
    "t0-11b": {"model_name": "bigscience/T0", "config": {**_T0_COMMON, "d_model": 4096, "d_ff": 10240, "num_heads": 64}},
}

FORMATS_IN = ("t-few", "peft", "tfew")
FORMATS_OUT = ("tfew", "peft")

PEFT_PREFIX = "base_model.model."
PEFT_SUFFIX = ".ia3_l"
TFEW_OFFICIAL_SUFFIX = ".multi_lora_b"


@dataclass
class BaseArchitecture:
    """The model (IA)^3 vectors belong to: a label for messages, the model's name and revision, its config."""

    label: str
    model_name: str
    revision: str | None
    config: object  # a transformers PretrainedConfig


@dataclass
class SourceVectors:
    """Vectors read from some format, renamed to this package's layer names, with the source's own names."""

    vectors: dict[str, torch.Tensor]  # layer name -> 1-D vector
    source_names: dict[str, str]  # layer name -> tensor name in the source
    source_shapes: dict[str, list[int]]  # layer name -> tensor shape in the source
    metadata: dict = field(default_factory=dict)


def resolve_base_config(spec: str, revision: str | None = None) -> BaseArchitecture:
    """Resolve `--base-config`: a preset name, a config.json or model folder, or a hub model id."""
    from transformers import AutoConfig

    if spec in ARCHITECTURES:
        preset = ARCHITECTURES[spec]
        values = dict(preset["config"])
        config = AutoConfig.for_model(values.pop("model_type"), **values)
        config.tie_word_embeddings = False  # transformers 5 drops this constructor argument
        return BaseArchitecture(spec, preset["model_name"], revision, config)

    path = Path(spec)
    if path.exists():
        return _config_from_path(path, revision)

    if re.fullmatch(r"[\w.-]+/[\w.-]+", spec):
        try:
            config = AutoConfig.from_pretrained(spec, revision=revision)
        except OSError as error:
            raise TfewError(
                f"base config {spec!r} is not a preset ({', '.join(ARCHITECTURES)}) or an existing path, and the "
                f"hub could not serve it ({error}); with HF_HUB_OFFLINE=1 only cached models load"
            ) from None
        return BaseArchitecture(spec, spec, revision, config)

    raise TfewError(
        f"base config {spec!r} is not a preset ({', '.join(ARCHITECTURES)}), an existing config.json or model "
        f"folder, or a hub model id (owner/name)"
    )


def _config_from_path(path: Path, revision: str | None) -> BaseArchitecture:
    from transformers import AutoConfig

    from tfew.models import read_model_identity

    config_file = path / "config.json" if path.is_dir() else path
    if not config_file.is_file():
        raise TfewError(f"no config.json in {path}; pass a model folder or its config.json")
    try:
        values = json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise TfewError(f"invalid JSON in {config_file}: {error}") from None
    if "model_type" not in values:
        raise TfewError(f"{config_file} has no `model_type`; it is not a transformers model config")

    config = AutoConfig.for_model(values.pop("model_type"), **values)
    if values.get("tie_word_embeddings") is False:
        config.tie_word_embeddings = False  # transformers 5 drops this constructor argument

    identity = read_model_identity(config_file.parent)
    model_name = identity["model_name"] if (config_file.parent / "tfew_model.json").is_file() else str(config_file.parent)
    return BaseArchitecture(str(path), model_name, revision or identity["model_revision"] or None, config)


def build_meta_model(base: BaseArchitecture):
    """Build the base model on the `meta` device: real module structure and shapes, no weights."""
    from transformers import AutoModelForSeq2SeqLM

    with torch.device("meta"):
        model = AutoModelForSeq2SeqLM.from_config(base.config)
    return model.eval()


def meta_ia3(base: BaseArchitecture, task_names: list[str] | None = None) -> IA3Model:
    """Return (IA)^3 layers in place on a meta-device copy of the base model."""
    return add_ia3(build_meta_model(base), task_names)


def check_vectors(ia3: IA3Model, source: SourceVectors, base: BaseArchitecture, origin: Path) -> None:
    """Raise on the first vector whose layer or width does not fit the base model, and on missing layers."""
    gated = getattr(base.config, "is_gated_act", True)
    for name, vector in source.vectors.items():
        source_name = source.source_names[name]
        if ".wi_1" in source_name and not gated:
            raise TfewError(
                f"{origin}: tensor {source_name} scales `wi_1`, which only gated feed-forward blocks have, but base "
                f"config {base.label} is non-gated ({base.config.feed_forward_proj}); its vector cannot be moved to `wo`"
            )
        if name not in ia3.layers:
            raise TfewError(
                f"{origin}: tensor {source_name} targets layer {name}, which base config {base.label} does not "
                f"have (or does not adapt); pass the --base-config the vectors were trained on"
            )
        expected = ia3.layers[name].width
        if vector.numel() != expected:
            shape = source.source_shapes[name]
            expected_shape = [expected if size == vector.numel() else size for size in shape]
            raise TfewError(
                f"{origin}: tensor {source_name} has shape {shape}, but base config {base.label} expects "
                f"{expected_shape}; pass the --base-config the vectors were trained on"
            )
        if not torch.isfinite(vector).all():
            raise TfewError(f"{origin}: tensor {source_name} contains NaN or infinite values; the vectors are corrupt")

    missing = [name for name in ia3.layers if name not in source.vectors]
    if missing:
        raise TfewError(
            f"{origin} lacks vectors for {len(missing)} of the {len(ia3.layers)} (IA)^3 layers of base config "
            f"{base.label}, starting with {missing[0]}; pass the --base-config the vectors were trained on"
        )


def read_tfew(path: Path) -> SourceVectors:
    """Read the package's own format."""
    vectors, info = load_vectors(path)
    flat = {name: tensor.reshape(-1) for name, tensor in vectors.items()}
    return SourceVectors(
        vectors=flat,
        source_names={name: name for name in vectors},
        source_shapes={name: list(tensor.shape) for name, tensor in vectors.items()},
        metadata=info,
    )


def read_official(path: Path) -> SourceVectors:
    """Read an official T-Few checkpoint of `*.multi_lora_b` tensors with `torch.load(weights_only=True)`."""
    path = Path(path)
    if not path.is_file():
        raise TfewError(f"T-Few checkpoint not found at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle, zip and runtime errors for foreign files
        raise TfewError(f"{path} is not a readable torch checkpoint ({error})") from error
    if not isinstance(state, dict) or not state:
        raise TfewError(f"{path} contains a {type(state).__name__}, not a dict of (IA)^3 tensors")

    source = SourceVectors({}, {}, {}, {"source_format": "t-few"})
    for key, tensor in state.items():
        if not key.endswith(TFEW_OFFICIAL_SUFFIX) or not torch.is_tensor(tensor):
            raise TfewError(
                f"{path}: entry {key!r} is not an (IA)^3 vector (`*{TFEW_OFFICIAL_SUFFIX}`); only checkpoints of "
                f"T-Few's ia3 configuration, with nothing but output scales, can be converted"
            )
        if tensor.dim() != 2 or tensor.shape[1] != 1:
            raise TfewError(f"{path}: tensor {key} has shape {list(tensor.shape)}; (IA)^3 output scales are [width, 1]")
        module = key[: -len(TFEW_OFFICIAL_SUFFIX)]
        _add_source_vector(source, path, key, module, tensor, scales_input=False)
    return source


def read_peft(folder: Path) -> SourceVectors:
    """Read a PEFT IA3 adapter folder through PEFT's own config and weight loaders."""
    from peft import PeftConfig
    from peft.utils import load_peft_weights

    folder = Path(folder)
    if not (folder / "adapter_config.json").is_file():
        raise TfewError(f"no adapter_config.json in {folder}; pass a PEFT adapter folder")
    config = PeftConfig.from_pretrained(str(folder))
    peft_type = str(getattr(config.peft_type, "value", config.peft_type))
    if peft_type != "IA3":
        raise TfewError(f"{folder} contains a {peft_type} adapter, not IA3")
    if config.modules_to_save:
        raise TfewError(
            f"{folder} also trains whole modules ({config.modules_to_save}), which (IA)^3 vectors cannot hold"
        )

    weights = load_peft_weights(str(folder), device="cpu")
    source = SourceVectors({}, {}, {}, {
        "source_format": "peft", "base_model": config.base_model_name_or_path, "base_revision": config.revision,
    })
    for key, tensor in weights.items():
        if not (key.startswith(PEFT_PREFIX) and key.endswith(PEFT_SUFFIX)) or tensor.dim() != 2 or 1 not in tensor.shape:
            raise TfewError(f"{folder}: tensor {key} with shape {list(tensor.shape)} is not an IA3 vector")
        module = key[len(PEFT_PREFIX) : -len(PEFT_SUFFIX)]
        # PEFT stores input scales (feed-forward modules) as [1, in] and output scales as [out, 1].
        scales_input = tensor.shape[0] == 1 and tensor.shape[1] != 1
        _add_source_vector(source, folder, key, module, tensor, scales_input)
    return source


def _add_source_vector(source: SourceVectors, origin: Path, key: str, module: str, tensor: torch.Tensor, scales_input: bool) -> None:
    name = _tfew_layer_name(origin, key, module, scales_input)
    if name in source.vectors:
        raise TfewError(f"{origin}: tensor {key} and tensor {source.source_names[name]} both set the vector of {name}")
    source.vectors[name] = tensor.detach().to(torch.float32).reshape(-1)
    source.source_names[name] = key
    source.source_shapes[name] = list(tensor.shape)


def _tfew_layer_name(origin: Path, key: str, module: str, scales_input: bool) -> str:
    """Map a module and its scaled side to the layer whose vector means the same in this package."""
    if module.endswith("DenseReluDense.wi_1") and not scales_input:
        # gelu(wi_0 x) * (l * wi_1 x) == l * (gelu(wi_0 x) * wi_1 x): the scale moves to the input of `wo`.
        return module[: -len("wi_1")] + "wo"
    if module.endswith("DenseReluDense.wo") and scales_input:
        return module
    if re.search(r"(SelfAttention|EncDecAttention)\.[kv]$", module) and not scales_input:
        return module
    side = "input" if scales_input else "output"
    raise TfewError(
        f"{origin}: tensor {key} scales the {side} of {module}; tfew (IA)^3 vectors scale the outputs of "
        f"attention k and v and the input of the feed-forward `wo` (or, equivalently, the output of `wi_1`)"
    )


def write_tfew(path: Path, vectors: dict[str, torch.Tensor], base: BaseArchitecture, extra: dict) -> Path:
    """Write the package's own format; `path` must end in `.safetensors`."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise TfewError(f"destination {path} must end in .safetensors for the tfew format")
    metadata = {"base_model": base.model_name, "base_revision": base.revision, "base_config": base.label, **extra}
    save_vectors(path, vectors, metadata)
    return path


def write_peft(folder: Path, vectors: dict[str, torch.Tensor], base: BaseArchitecture) -> Path:
    """Write a PEFT IA3 adapter folder by wrapping a meta-device base with PEFT and saving it with PEFT."""
    from peft import IA3Config, get_peft_model

    model = build_meta_model(base)
    # get_peft_model records the model's `name_or_path` as base_model_name_or_path, replacing the config's value.
    model.name_or_path = base.model_name
    config = IA3Config(
        task_type="SEQ_2_SEQ_LM",
        target_modules=["k", "v", "wo"],
        feedforward_modules=["wo"],
        base_model_name_or_path=base.model_name,
        revision=base.revision,
    )
    peft_model = get_peft_model(model, config)

    wrapped = {}
    for name, module in peft_model.base_model.model.named_modules():
        if hasattr(module, "ia3_l") and "default" in module.ia3_l:
            wrapped[name] = module
    if set(wrapped) != set(vectors):
        extra, missing = sorted(set(wrapped) - set(vectors)), sorted(set(vectors) - set(wrapped))
        raise TfewError(
            f"PEFT's IA3 targets on base config {base.label} differ from the vectors: PEFT adds {extra[:3]}, "
            f"PEFT lacks {missing[:3]}"
        )
    for name, module in wrapped.items():
        shape = module.ia3_l["default"].shape
        module.ia3_l["default"] = torch.nn.Parameter(vectors[name].detach().to(torch.float32).reshape(shape).clone())

    folder = Path(folder)
    peft_model.save_pretrained(str(folder))
    return folder


def read_vectors(path: Path, source_format: str) -> SourceVectors:
    """Read vectors in any supported input format."""
    readers = {"t-few": read_official, "peft": read_peft, "tfew": read_tfew}
    if source_format not in readers:
        raise TfewError(f"unknown source format {source_format!r}; choose one of {FORMATS_IN}")
    return readers[source_format](Path(path))


def convert(source: Path, destination: Path, source_format: str, target_format: str,
            base_spec: str, revision: str | None = None) -> dict:
    """Convert vectors between formats after checking them against the base architecture; return a summary."""
    if target_format not in FORMATS_OUT:
        raise TfewError(f"unknown target format {target_format!r}; choose one of {FORMATS_OUT}")
    base = resolve_base_config(base_spec, revision)
    vectors = read_vectors(source, source_format)
    recorded = vectors.metadata.get("base_model")
    if recorded and recorded != base.model_name:
        log.warning("%s records base model %s, but --base-config %s is %s; shapes are checked, names are not",
                    source, recorded, base_spec, base.model_name)
    ia3 = meta_ia3(base)
    check_vectors(ia3, vectors, base, Path(source))
    ordered = {name: vectors.vectors[name] for name in ia3.layers}

    if target_format == "tfew":
        provenance = {"source_format": source_format, "source_file": str(source)}
        if Path(source).is_file():
            provenance["source_sha256"] = sha256_of(Path(source))
        written = write_tfew(destination, ordered, base, provenance)
    else:
        written = write_peft(destination, ordered, base)

    counts = ia3.parameter_counts()
    log.info("converted %s (%s) to %s (%s) for %s: %s vectors, %s values",
             source, source_format, written, target_format, base.label, len(ordered), counts["total"])
    return {"destination": str(written), "vectors": len(ordered), "parameters": counts["total"], "base": base.label}
