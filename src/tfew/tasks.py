"""Registry of the held-out T0 tasks that T-Few evaluates on.

Each entry is declarative: where the rows come from (hub id, config, pinned revision), which fields a row in
the Hugging Face schema carries, how its label becomes a class index, which promptsource templates apply,
which split trains and which evaluates, and how many shots the paper uses. The hub id and the promptsource
key are separate fields because `datasets` 4 and later only load namespaced ids such as `aps/super_glue`,
while promptsource still files its templates under the old bare names.

Shots, splits, label conversions and the COPA template cut follow Liu et al. 2022 (Section 3.1) and the
official code, r-three/t-few at commit 114deced63ae722a368e06cb08ea956b20c393a6 (`src/data/dataset_readers.py`,
`configs/<task>.json`). This module must stay free of heavy imports: `tfew data list` and the workflow read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tfew.errors import TfewError

# Few-shot seeds of Liu et al. 2022, Section 3.1 (each is both the split seed and the training seed).
DEFAULT_SEEDS = (0, 1, 32, 42, 1024)

# The r-three/t-few commit whose `data/few_shot/` files the official splits come from.
TFEW_REPO_COMMIT = "114deced63ae722a368e06cb08ea956b20c393a6"

# Hub revisions. The SuperGLUE, HellaSwag and ANLI pins are commits at which other public projects load these
# repositories with `datasets` 4 or later. They were not re-checked against the live hub.
SUPER_GLUE_REVISION = "5234c61e804e85e5994b14b002fa9ec34487bcfb"
HELLASWAG_REVISION = "218ec52e09a7e7462a5400043bb9a69a41d06b76"
ANLI_REVISION = "8e4813d81f46d313dac7892e1c28076917cfcdf9"
# NOTE: no commit of allenai/winogrande could be confirmed offline, so Winogrande loads the repository's
# current main branch; pass a revision (`tfew data export --revision winogrande=SHA`) to pin it.
WINOGRANDE_REVISION = None


class LabelError(ValueError):
    """A row's label field is missing, empty (an unlabeled test row) or not a class number."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _class_number(row: dict, field: str, first_class: int) -> int:
    """Read `row[field]` as a class number that starts at `first_class`, and return it as a 0-based index.

    Unlabeled test rows hold -1 (ClassLabel columns) or "" (string columns). They are rejected, because
    casting them would score them against a class they do not have.
    """
    if field not in row:
        raise LabelError(field, f"missing label field {field!r}")
    value = row[field]
    if value is None or value == "" or value == -1 or value == "-1":
        raise LabelError(
            field,
            f"label field {field!r} is {value!r}: this is an unlabeled row (hub test splits carry no labels); "
            f"evaluate on a labeled split instead",
        )
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise LabelError(field, f"label field {field!r} is {value!r}, expected a class number")
    try:
        number = int(value)
    except ValueError:
        raise LabelError(field, f"label field {field!r} is {value!r}, expected a class number") from None
    return number - first_class


def label_from_class_label(row: dict) -> int:
    """Return the label of a ClassLabel column (SuperGLUE, ANLI): already a 0-based index."""
    return _class_number(row, "label", 0)


def label_from_winogrande_answer(row: dict) -> int:
    """Return the label of a Winogrande row: `answer` is the string "1" or "2" (T-Few: int(answer) - 1)."""
    return _class_number(row, "answer", 1)


def label_from_story_cloze_ending(row: dict) -> int:
    """Return the label of a StoryCloze row: `answer_right_ending` is 1 or 2 (T-Few: value - 1)."""
    return _class_number(row, "answer_right_ending", 1)


def label_from_hellaswag_string(row: dict) -> int:
    """Return the label of a HellaSwag row: the hub stores it as the string "0".."3" (T-Few: int(label))."""
    return _class_number(row, "label", 0)


@dataclass(frozen=True)
class TaskSpec:
    """One held-out task: its data source, row schema, label conversion, splits, shots and templates."""

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
    fields: tuple[str, ...]
    # Keep only the first N original-task templates in promptsource's name order (None keeps all).
    max_templates: int | None = None
    # T-Few's reader adds `label` (as label_fn computes it) and `idx` (the row's position in its split)
    # to rows of these tasks. Its official few-shot files carry both fields.
    adds_label: bool = False
    adds_index: bool = False
    # StoryCloze has no data on the hub: its rows come from the ROCStories CSV files, read locally.
    manual_download: bool = False

    @property
    def mirror_config(self) -> str:
        """Config folder name in the offline mirror (`default` when the hub has none)."""
        return self.hub_config or "default"

    @property
    def hub_path(self) -> str:
        """Hub id and config as one string, as `tfew data list` prints it."""
        return f"{self.hub_id}/{self.hub_config}" if self.hub_config else self.hub_id

    def label_of(self, row: dict) -> int:
        """Return the row's 0-based class index; raise LabelError for unlabeled or malformed rows."""
        return self.label_fn(row)


SUPER_GLUE_FIELDS = {
    "rte": ("premise", "hypothesis", "idx", "label"),
    "cb": ("premise", "hypothesis", "idx", "label"),
    "copa": ("premise", "choice1", "choice2", "question", "idx", "label"),
    "wic": ("word", "sentence1", "sentence2", "start1", "start2", "end1", "end2", "idx", "label"),
    "wsc.fixed": ("text", "span1_index", "span2_index", "span1_text", "span2_text", "idx", "label"),
}

ANLI_FIELDS = ("uid", "premise", "hypothesis", "label", "reason")
WINOGRANDE_FIELDS = ("sentence", "option1", "option2", "answer")
HELLASWAG_FIELDS = (
    "ind", "activity_label", "ctx_a", "ctx_b", "ctx", "endings", "source_id", "split", "split_type", "label",
)
# Column names of the retired hub script `story_cloze.py`, which the promptsource templates read.
STORY_CLOZE_FIELDS = (
    "story_id", "input_sentence_1", "input_sentence_2", "input_sentence_3", "input_sentence_4",
    "sentence_quiz1", "sentence_quiz2", "answer_right_ending",
)


def _super_glue(name: str, config: str, few_shot_dir: str, max_templates: int | None = None) -> TaskSpec:
    return TaskSpec(
        name=name,
        hub_id="aps/super_glue",
        hub_config=config,
        hub_revision=SUPER_GLUE_REVISION,
        promptsource_key=("super_glue", config),
        train_split="train",
        eval_split="validation",
        num_shots=32,
        few_shot_dir=few_shot_dir,
        label_field="label",
        label_fn=label_from_class_label,
        fields=SUPER_GLUE_FIELDS[config],
        max_templates=max_templates,
    )


def _anli(round_: int) -> TaskSpec:
    return TaskSpec(
        name=f"anli_r{round_}",
        hub_id="facebook/anli",
        hub_config="plain_text",
        hub_revision=ANLI_REVISION,
        promptsource_key=("anli", None),
        train_split=f"train_r{round_}",
        eval_split=f"test_r{round_}",
        num_shots=50,
        few_shot_dir=f"anli-r{round_}",
        label_field="label",
        label_fn=label_from_class_label,
        fields=ANLI_FIELDS,
        adds_index=True,
    )


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        _super_glue("rte", "rte", "rte"),
        _super_glue("cb", "cb", "cb"),
        # Liu et al. 2022 keep the first 8 COPA templates. In promptsource 0.2.3 the other four render only
        # one question type: "…As a result, C1 or C2?" and "…What could happen next, C1 or C2?" only
        # "effect" rows, "…which may be caused by" and "…why? C1 or C2" only "cause" rows.
        _super_glue("copa", "copa", "copa", max_templates=8),
        _super_glue("wic", "wic", "wic"),
        _super_glue("wsc", "wsc.fixed", "wsc"),
        TaskSpec(
            name="winogrande",
            hub_id="allenai/winogrande",
            hub_config="winogrande_xl",
            hub_revision=WINOGRANDE_REVISION,
            promptsource_key=("winogrande", "winogrande_xl"),
            train_split="train",
            eval_split="validation",
            num_shots=50,
            few_shot_dir="winogrande",
            label_field="answer",
            label_fn=label_from_winogrande_answer,
            fields=WINOGRANDE_FIELDS,
            adds_label=True,
            adds_index=True,
        ),
        TaskSpec(
            name="hellaswag",
            hub_id="Rowan/hellaswag",
            hub_config=None,
            hub_revision=HELLASWAG_REVISION,
            promptsource_key=("hellaswag", None),
            train_split="train",
            eval_split="validation",
            num_shots=20,
            few_shot_dir="h-swag",
            label_field="label",
            label_fn=label_from_hellaswag_string,
            fields=HELLASWAG_FIELDS,
            adds_label=True,
            adds_index=True,
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
            label_fn=label_from_story_cloze_ending,
            fields=STORY_CLOZE_FIELDS,
            adds_label=True,
            adds_index=True,
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
