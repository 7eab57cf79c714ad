"""Registry of the held-out T0 tasks that T-Few evaluates on.

Each entry is declarative: where the rows come from (hub id, config, pinned revision), which promptsource
templates apply, which split trains and which evaluates, and how many shots the paper uses. The hub id and
the promptsource key are separate fields because `datasets` 4 and later only load namespaced ids such as
`aps/super_glue`, while promptsource still files its templates under the old bare names.

Shots, splits and the COPA template cut follow Liu et al. 2022, Section 3.1, and the official configs in
r-three/t-few at commit 114deced63ae722a368e06cb08ea956b20c393a6.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tfew.errors import TfewError

# Few-shot seeds of Liu et al. 2022, Section 3.1 (each is both the split seed and the training seed).
DEFAULT_SEEDS = (0, 1, 32, 42, 1024)

# The r-three/t-few commit whose `data/few_shot/` files the official splits come from.
TFEW_REPO_COMMIT = "114deced63ae722a368e06cb08ea956b20c393a6"


def _label_identity(row: dict) -> int:
    return int(row["label"])


def _label_winogrande(row: dict) -> int:
    # `answer` is the string "1" or "2"; the test split leaves it empty.
    return int(row["answer"]) - 1


def _label_story_cloze(row: dict) -> int:
    return int(row["answer_right_ending"]) - 1


def _label_hellaswag(row: dict) -> int:
    # The hub stores the label as a string "0".."3" (empty on the test split).
    return int(row["label"])


@dataclass(frozen=True)
class TaskSpec:
    """One held-out task: its data source, splits, shot count and template selection."""

    name: str
    hub_id: str
    hub_config: str | None
    hub_revision: str | None
    promptsource_key: tuple[str, str | None]
    train_split: str
    eval_split: str
    num_shots: int
    few_shot_dir: str
    label_field: str
    label_fn: Callable[[dict], int]
    max_templates: int | None = None
    manual_download: bool = False

    @property
    def mirror_config(self) -> str:
        """Return the config folder name used in the offline mirror (`default` when the hub has none)."""
        return self.hub_config or "default"


def _super_glue(name: str, config: str, few_shot_dir: str, max_templates: int | None = None) -> TaskSpec:
    return TaskSpec(
        name=name,
        hub_id="aps/super_glue",
        hub_config=config,
        # NOTE: the revision pins below were read from stored hub pages, not checked against the live hub.
        hub_revision=None,
        promptsource_key=("super_glue", config),
        train_split="train",
        eval_split="validation",
        num_shots=32,
        few_shot_dir=few_shot_dir,
        label_field="label",
        label_fn=_label_identity,
        max_templates=max_templates,
    )


def _anli(round_: int) -> TaskSpec:
    return TaskSpec(
        name=f"anli_r{round_}",
        hub_id="facebook/anli",
        hub_config="plain_text",
        hub_revision=None,
        promptsource_key=("anli", None),
        train_split=f"train_r{round_}",
        eval_split=f"test_r{round_}",
        num_shots=50,
        few_shot_dir=f"anli-r{round_}",
        label_field="label",
        label_fn=_label_identity,
    )


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        _super_glue("rte", "rte", "rte"),
        _super_glue("cb", "cb", "cb"),
        # Liu et al. 2022 keep the first 8 COPA templates: the others render only "effect" questions.
        _super_glue("copa", "copa", "copa", max_templates=8),
        _super_glue("wic", "wic", "wic"),
        _super_glue("wsc", "wsc.fixed", "wsc"),
        TaskSpec(
            name="winogrande",
            hub_id="allenai/winogrande",
            hub_config="winogrande_xl",
            hub_revision=None,
            promptsource_key=("winogrande", "winogrande_xl"),
            train_split="train",
            eval_split="validation",
            num_shots=50,
            few_shot_dir="winogrande",
            label_field="answer",
            label_fn=_label_winogrande,
        ),
        TaskSpec(
            name="hellaswag",
            hub_id="Rowan/hellaswag",
            hub_config=None,
            hub_revision=None,
            promptsource_key=("hellaswag", None),
            train_split="train",
            eval_split="validation",
            num_shots=20,
            few_shot_dir="h-swag",
            label_field="label",
            label_fn=_label_hellaswag,
        ),
        TaskSpec(
            name="story_cloze",
            hub_id="LSDSem/story_cloze",
            hub_config="2016",
            hub_revision=None,
            promptsource_key=("story_cloze", "2016"),
            # StoryCloze has no training split: T-Few draws its shots from validation and evaluates on test.
            train_split="validation",
            eval_split="test",
            num_shots=70,
            few_shot_dir="storycloze",
            label_field="answer_right_ending",
            label_fn=_label_story_cloze,
            manual_download=True,
        ),
        _anli(1),
        _anli(2),
        _anli(3),
    ]
}


def get_task(name: str) -> TaskSpec:
    """Return the registry entry for `name`, or raise with the list of known task names."""
    try:
        return TASKS[name]
    except KeyError:
        known = ", ".join(sorted(TASKS))
        raise TfewError(f"unknown task {name!r}; known tasks: {known}") from None
