"""(IA)^3: learned vectors that rescale attention keys, attention values and the feed-forward activation.

Liu et al. 2022, Section 3.3: l_k and l_v multiply the keys and values of every self- and cross-attention
layer, and l_ff multiplies the feed-forward activation that enters the output projection `wo`. The vectors
start at ones, so an untrained adapter is the identity, and the backbone stays frozen.

Scaling the input of `wo` covers both T5 block types: in gated blocks (T0, T5 v1.1, LM-adapted T5) it equals
scaling the output of `wi_1`, which is where the official T-Few code puts the vector; in non-gated blocks
(original T5) there is no `wi_1` at all, and a `wi_1` pattern silently matches nothing.

Mixed-task batches: each wrapped layer holds one row of vectors per task. A `TaskRouter` shared by all layers
of a model says which row each example of the current batch uses, so one forward pass can serve many tasks.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import torch
from torch import nn

from tfew.errors import TfewError

log = logging.getLogger(__name__)

# Module-name patterns for T5-family models, and whether the vector scales the layer's output or input.
# The three groups are the three vectors of the method: keys, values and the feed-forward activation.
T5_TARGETS: dict[str, tuple[str, bool]] = {
    "k": (r"(SelfAttention|EncDecAttention)\.k$", False),
    "v": (r"(SelfAttention|EncDecAttention)\.v$", False),
    "ff": (r"DenseReluDense\.wo$", True),
}


@dataclass
class TaskRouter:
    """Which task's vectors each example of the current batch uses.

    `task_ids` is None when the whole batch uses `active_task`; otherwise it holds one task index per row of
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
    """A frozen linear layer whose output (keys, values) or input (feed-forward activation) is rescaled."""

    def __init__(self, base: nn.Linear, scale_input: bool, router: TaskRouter):
        super().__init__()
        self.base = base
        self.scale_input = scale_input
        self.router = router
        width = base.in_features if scale_input else base.out_features
        self.ia3_vectors = nn.Parameter(
            torch.ones(len(router.task_names), width, dtype=base.weight.dtype, device=base.weight.device)
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

    def _vector_for(self, batch_size: int) -> torch.Tensor:
        task_ids = self.router.task_ids
        if task_ids is None:
            return self.ia3_vectors[self.router.active_task]
        if task_ids.shape[0] != batch_size:
            raise TfewError(
                f"the task-id vector has {task_ids.shape[0]} entries but the batch entering an (IA)^3 layer "
                f"has {batch_size} rows"
            )
        return self.ia3_vectors[task_ids].unsqueeze(1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        vector = self._vector_for(hidden_states.shape[0]).to(hidden_states.dtype)
        if self.scale_input:
            return self.base(hidden_states * vector)
        return self.base(hidden_states) * vector


@dataclass
class IA3Model:
    """A backbone with (IA)^3 layers in place, the router that picks vectors, and the wrapped layers by name."""

    model: nn.Module
    router: TaskRouter
    layers: dict[str, IA3Linear] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)  # layer name -> "k", "v" or "ff"

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Return the (IA)^3 vectors, the only parameters that training updates."""
        return [layer.ia3_vectors for layer in self.layers.values()]

    def parameter_counts(self) -> dict[str, int]:
        """Count trainable parameters per vector type for one task, plus their total."""
        counts = {group: 0 for group in T5_TARGETS}
        for name, layer in self.layers.items():
            counts[self.groups[name]] += layer.ia3_vectors.shape[1]
        counts["total"] = sum(counts.values())
        return counts

    def use_task(self, name: str) -> None:
        """Route every example of the following batches to one task's vectors."""
        self.router.active_task = self.router.task_index(name)
        self.router.task_ids = None

    def route(self, task_ids: torch.Tensor | None) -> None:
        """Route each row of the following batches to its own task (None goes back to the active task)."""
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
                if vector.shape[0] != layer.ia3_vectors.shape[1]:
                    raise TfewError(
                        f"(IA)^3 vector {name} has {vector.shape[0]} entries; the model expects "
                        f"{layer.ia3_vectors.shape[1]}"
                    )
                layer.ia3_vectors[index].copy_(vector)


def add_ia3(
    model: nn.Module,
    task_names: list[str] | None = None,
    targets: dict[str, tuple[str, bool]] | None = None,
) -> IA3Model:
    """Freeze `model` and wrap every target layer with (IA)^3 vectors, one row per task."""
    targets = targets or T5_TARGETS
    router = TaskRouter(list(task_names or ["default"]))
    for parameter in model.parameters():
        parameter.requires_grad_(False)

    wrapped = IA3Model(model=model, router=router)
    for group, (pattern, scale_input) in targets.items():
        regex = re.compile(pattern)
        matches = [
            (name, module)
            for name, module in model.named_modules()
            if regex.search(name) and isinstance(module, nn.Linear)
        ]
        if not matches:
            raise TfewError(
                f"(IA)^3 target {group!r} with pattern {pattern!r} matches no linear layer of "
                f"{type(model).__name__}; check the module names with `model.named_modules()`"
            )
        for name, module in matches:
            layer = IA3Linear(module, scale_input=scale_input, router=router)
            parent_name, _, child_name = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child_name, layer)
            wrapped.layers[name] = layer
            wrapped.groups[name] = group

    counts = wrapped.parameter_counts()
    log.info("(IA)^3 on %s: %s trainable parameters per task", type(model).__name__, counts)
    return wrapped
