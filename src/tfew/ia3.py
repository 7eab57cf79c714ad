"""(IA)^3: learned vectors that rescale attention keys, attention values and the feed-forward activation.

Liu et al. 2022, Section 3.3: l_k and l_v multiply the keys and values of every self- and cross-attention
layer, and l_ff multiplies the feed-forward activation that enters the output projection `wo`. The vectors
start at ones, so an untrained adapter is the identity, and the backbone stays frozen.

Scaling the input of `wo` covers both T5 block types. In gated blocks (T0, T5 v1.1, LM-adapted T5) it equals
scaling the output of `wi_1`, which is where the official T-Few code puts the vector, because the gate
multiplies elementwise and dropout commutes with a per-feature scale. Non-gated blocks (original T5) have a
single `wi` and no `wi_1`, so a `wi_1` pattern would match nothing there.

Mixed-task batches: each wrapped layer contains one row of vectors per task. A `TaskRouter` shared by all
layers of a model stores the task of each example of the current batch, so one forward pass can serve many tasks.

This module only changes modules in place and routes tasks; file formats live in `tfew.vectors_io` and
`tfew.ia3_formats`, scoring and losses in `tfew.scoring`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import torch
from torch import nn

from tfew.errors import TfewError

log = logging.getLogger(__name__)

# Module-name patterns for T5-family models, and whether the vector scales the layer's input (True) or its
# output (False). The three groups are the three vectors of the method: keys, values and the feed-forward
# activation. `wo` exists in gated and non-gated feed-forward blocks alike.
T5_TARGETS: dict[str, tuple[str, bool]] = {
    "k": (r"(SelfAttention|EncDecAttention)\.k$", False),
    "v": (r"(SelfAttention|EncDecAttention)\.v$", False),
    "ff": (r"DenseReluDense\.wo$", True),
}

# Default targets per `config.model_type`. mT5 and umT5 reuse T5's module names.
TARGETS_BY_MODEL_TYPE: dict[str, dict[str, tuple[str, bool]]] = {
    "t5": T5_TARGETS,
    "mt5": T5_TARGETS,
    "umt5": T5_TARGETS,
}


@dataclass
class TaskRouter:
    """The task whose vectors each example of the current batch uses.

    `task_ids` is None when the whole batch uses `active_task`; otherwise it contains one task index per row of
    the tensors entering the wrapped layers.
    """

    task_names: list[str]
    active_task: int = 0
    task_ids: torch.Tensor | None = None

    def task_index(self, name: str) -> int:
        """Return the vector row of a task, or raise naming the tasks that have vectors."""
        try:
            return self.task_names.index(name)
        except ValueError:
            raise TfewError(f"no (IA)^3 vectors for task {name!r}; loaded tasks: {self.task_names}") from None


class IA3Linear(nn.Module):
    """A frozen linear layer whose output (keys, values) or input (feed-forward activation) is rescaled.

    The vectors are kept in float32 whatever the backbone's dtype, as mixed-precision training expects of
    trainable parameters. `forward` casts them to the activations' dtype.
    """

    def __init__(self, base: nn.Linear, scale_input: bool, router: TaskRouter):
        super().__init__()
        self.base = base
        self.scale_input = scale_input
        self.router = router
        width = base.in_features if scale_input else base.out_features
        self.ia3_vectors = nn.Parameter(
            torch.ones(len(router.task_names), width, dtype=torch.float32, device=base.weight.device)
        )

    @property
    def weight(self) -> torch.Tensor:
        # T5's feed-forward block reads `wo.weight.dtype` to decide on casting, so the frozen weight stays visible.
        return self.base.weight

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    @property
    def width(self) -> int:
        """Number of entries of one task's vector."""
        return self.ia3_vectors.shape[1]

    def _vector_for(self, hidden_states: torch.Tensor) -> torch.Tensor:
        task_ids = self.router.task_ids
        if task_ids is None:
            return self.ia3_vectors[self.router.active_task]

        batch_size = hidden_states.shape[0]
        if task_ids.shape[0] != batch_size:
            raise TfewError(
                f"the task-id vector has {task_ids.shape[0]} entries but the batch entering an (IA)^3 layer "
                f"has {batch_size} rows"
            )
        # One vector per row, broadcast over the sequence positions in between.
        per_row = self.ia3_vectors.index_select(0, task_ids)
        return per_row.view(batch_size, *([1] * (hidden_states.dim() - 2)), self.width)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        vector = self._vector_for(hidden_states).to(hidden_states.dtype)
        if self.scale_input:
            return self.base(hidden_states * vector)
        return self.base(hidden_states) * vector

    def extra_repr(self) -> str:
        side = "input" if self.scale_input else "output"
        return f"scales={side}, width={self.width}, tasks={len(self.router.task_names)}"


def module_type(layer_name: str) -> str:
    """Return a layer name without its block and layer indices, e.g. `decoder.EncDecAttention.k`.

    A path part is dropped when it is a number or the container right before one (`block.3`, `layer.1`).
    """
    parts = layer_name.split(".")
    kept = []
    for index, part in enumerate(parts):
        next_is_number = index + 1 < len(parts) and parts[index + 1].isdigit()
        if part.isdigit() or next_is_number:
            continue
        kept.append(part)
    return ".".join(kept)


@dataclass
class IA3Model:
    """A backbone with (IA)^3 layers in place, the router that picks vectors, and the wrapped layers by name."""

    model: nn.Module
    router: TaskRouter
    layers: dict[str, IA3Linear] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)  # layer name -> "k", "v" or "ff"

    @property
    def task_names(self) -> list[str]:
        return list(self.router.task_names)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Return the (IA)^3 vectors, the only parameters that training updates."""
        return [layer.ia3_vectors for layer in self.layers.values()]

    def parameter_counts(self) -> dict[str, int]:
        """Count trainable parameters per vector type (k, v, ff) for one task, plus their total."""
        counts = {group: 0 for group in dict.fromkeys(self.groups.values())}
        for name, layer in self.layers.items():
            counts[self.groups[name]] += layer.width
        counts["total"] = sum(counts.values())
        return counts

    def parameter_counts_by_module(self) -> dict[str, dict[str, int]]:
        """Count trainable parameters per module type for one task: layers, vector width and parameters.

        Module types are layer names without block indices, e.g. `encoder.SelfAttention.k`.
        """
        table: dict[str, dict[str, int]] = {}
        for name, layer in self.layers.items():
            row = table.setdefault(module_type(name), {"layers": 0, "width": layer.width, "parameters": 0})
            row["layers"] += 1
            row["parameters"] += layer.width
        return table

    def use_task(self, name: str) -> None:
        """Route every example of the following batches to one task's vectors."""
        self.router.active_task = self.router.task_index(name)
        self.router.task_ids = None

    def task_ids(self, names: list[str]) -> torch.Tensor:
        """Return the vector rows of a list of task names, for `route` or `encode_batch(task_ids=...)`."""
        return torch.tensor([self.router.task_index(name) for name in names], dtype=torch.long)

    def route(self, task_ids: torch.Tensor | None) -> None:
        """Route each row of the following batches to its own task (None goes back to the active task)."""
        if task_ids is not None:
            task_ids = torch.as_tensor(task_ids, dtype=torch.long)
            if task_ids.dim() != 1:
                raise TfewError(f"task ids must be a 1-D tensor with one id per row, got shape {list(task_ids.shape)}")
            # Checking the range reads the values, which a meta tensor does not have.
            if task_ids.device.type == "cpu" and task_ids.numel():
                low, high = int(task_ids.min()), int(task_ids.max())
                if low < 0 or high >= len(self.router.task_names):
                    raise TfewError(
                        f"task id {low if low < 0 else high} is out of range; this model has vectors for "
                        f"{len(self.router.task_names)} tasks {self.router.task_names}"
                    )
            device = next(iter(self.layers.values())).ia3_vectors.device
            task_ids = task_ids.to(device)
        self.router.task_ids = task_ids

    def vectors(self, task: str | int = 0) -> dict[str, torch.Tensor]:
        """Return one task's vectors keyed by layer name."""
        index = task if isinstance(task, int) else self.router.task_index(task)
        return {name: layer.ia3_vectors[index].detach().clone() for name, layer in self.layers.items()}

    def load_vectors(self, vectors: dict[str, torch.Tensor], task: str | int = 0) -> None:
        """Copy one task's vectors into place; names and shapes must match the wrapped layers exactly."""
        index = task if isinstance(task, int) else self.router.task_index(task)
        missing = sorted(set(self.layers) - set(vectors))
        unexpected = sorted(set(vectors) - set(self.layers))
        if missing or unexpected:
            raise TfewError(
                f"(IA)^3 vectors do not fit this model: missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
            )
        with torch.no_grad():
            for name, layer in self.layers.items():
                vector = vectors[name].reshape(-1)
                if vector.shape[0] != layer.width:
                    raise TfewError(
                        f"(IA)^3 vector {name} has {vector.shape[0]} entries; the model expects {layer.width}"
                    )
                layer.ia3_vectors[index].copy_(vector)


def default_targets(model: nn.Module) -> dict[str, tuple[str, bool]]:
    """Return the target table for a model's `config.model_type`, or raise naming the type."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in TARGETS_BY_MODEL_TYPE:
        raise TfewError(
            f"no default (IA)^3 targets for model type {model_type!r} ({type(model).__name__}); known types: "
            f"{sorted(TARGETS_BY_MODEL_TYPE)}. Pass `targets=` with module-name patterns"
        )
    return TARGETS_BY_MODEL_TYPE[model_type]


def add_ia3(
    model: nn.Module,
    task_names: list[str] | None = None,
    targets: dict[str, tuple[str, bool]] | None = None,
) -> IA3Model:
    """Freeze `model` and wrap every target layer with (IA)^3 vectors, one row per task.

    `targets` maps a vector type to (module-name regex, scale the input); by default the table for the
    model's type. A pattern that matches no linear layer raises, naming the pattern and the model class.
    """
    if any(isinstance(module, IA3Linear) for module in model.modules()):
        raise TfewError(
            f"{type(model).__name__} already has (IA)^3 layers; keep the IA3Model that the first add_ia3 call "
            f"returned, and list every task in its task_names"
        )
    targets = targets or default_targets(model)
    task_names = list(task_names or ["default"])
    if len(set(task_names)) != len(task_names):
        raise TfewError(f"task names must be unique, got {task_names}")

    router = TaskRouter(task_names)
    for parameter in model.parameters():
        parameter.requires_grad_(False)

    group_of: dict[str, str] = {}
    for group, (pattern, _) in targets.items():
        for name in _matching_linear_layers(model, group, pattern):
            if name in group_of:
                raise TfewError(f"layer {name} matches the (IA)^3 targets {group_of[name]!r} and {group!r}; make the patterns disjoint")
            group_of[name] = group

    # Layers are wrapped in the model's module order, so saved files list them block by block.
    wrapped = IA3Model(model=model, router=router)
    for name, module in list(model.named_modules()):
        if name not in group_of:
            continue
        layer = IA3Linear(module, scale_input=targets[group_of[name]][1], router=router)
        parent_name, _, child_name = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child_name, layer)
        wrapped.layers[name] = layer
        wrapped.groups[name] = group_of[name]

    log.info("(IA)^3 on %s: %s trainable parameters per task", type(model).__name__, wrapped.parameter_counts())
    return wrapped


def _matching_linear_layers(model: nn.Module, group: str, pattern: str) -> list[str]:
    regex = re.compile(pattern)
    matches = [name for name, module in model.named_modules() if regex.search(name) and isinstance(module, nn.Linear)]
    if not matches:
        raise TfewError(
            f"(IA)^3 target {group!r} with pattern '{pattern}' matches no linear layer of "
            f"{type(model).__name__}; check the module names with `model.named_modules()`"
        )
    return matches
