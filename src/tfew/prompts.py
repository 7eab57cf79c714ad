"""Apply promptsource templates to task rows: input text, answer choices and label index.

Every rendered example records the promptsource version and a hash of its template's Jinja source, because
template wording changed between promptsource releases and moves accuracy by points. A row that a template
does not apply to (some COPA templates only ask about effects) is skipped and counted per template. Every
other problem with a row raises a RowValidationError that names the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

from tfew.errors import RowValidationError, TfewError
from tfew.tasks import LabelError, TaskSpec

log = logging.getLogger(__name__)

# "paper": the original-task templates, cut to the task's maximum as Liu et al. 2022 do (COPA keeps 8).
# "original": every original-task template, for studying the templates the paper left out.
TEMPLATE_SELECTIONS = ("paper", "original")

# promptsource's `choice` Jinja filter calls random.choice (HellaSwag's "Randomized prompts template").
_RANDOM_FILTER = re.compile(r"\|\s*choice\b")


@dataclass
class RenderStats:
    """Counts of rows rendered and skipped by one template, with the positions of the skipped rows."""

    template_name: str
    template_index: int = 0
    template_hash: str = ""
    rendered: int = 0
    skipped: int = 0
    skipped_indices: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        """Return the counts as render_stats.json stores them for one template."""
        return {
            "template_index": self.template_index,
            "template_hash": self.template_hash,
            "rows": self.rendered + self.skipped,
            "rendered": self.rendered,
            "skipped": self.skipped,
            "skipped_example_indices": self.skipped_indices,
        }


def promptsource_version() -> str:
    """Return the installed promptsource version."""
    from importlib.metadata import version

    return version("promptsource")


@lru_cache(maxsize=None)
def _dataset_templates(dataset_name: str, subset_name: str | None):
    with warnings.catch_warnings():
        # promptsource 0.2.3 imports pkg_resources, which setuptools marks deprecated.
        warnings.simplefilter("ignore", UserWarning)
        from promptsource.templates import DatasetTemplates

    return DatasetTemplates(dataset_name, subset_name)


def original_task_templates(task: TaskSpec) -> list:
    """Return every original-task template of the task, in promptsource's name order (as T-Few indexes them)."""
    collection = _dataset_templates(*task.promptsource_key)
    names = [name for name in collection.all_template_names if collection[name].metadata.original_task]
    if not names:
        raise TfewError(
            f"{task.name}: promptsource has no original-task templates for {task.promptsource_key}; "
            f"check the promptsource key (templates live under the old bare dataset names) and version."
        )
    return [collection[name] for name in names]


def select_templates(task: TaskSpec, selection: str = "paper") -> list:
    """Return the templates a run uses: see TEMPLATE_SELECTIONS."""
    if selection not in TEMPLATE_SELECTIONS:
        raise TfewError(f"unknown template selection {selection!r}; use one of {TEMPLATE_SELECTIONS}")
    templates = original_task_templates(task)
    if selection == "paper" and task.max_templates is not None:
        templates = templates[: task.max_templates]
    return templates


def template_hash(template) -> str:
    """Return the first 16 hex digits of the sha256 of a template's Jinja source and answer choices."""
    source = template.jinja + "\n" + (template.answer_choices or "")
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def _apply(template, row: dict) -> tuple[list[str], list[str] | None]:
    """Apply a template; templates that draw with random.choice get a seed fixed by the row and template."""
    if not _RANDOM_FILTER.search(template.jinja):
        return template.apply(row), template.get_answer_choices_list(row)

    content = template_hash(template) + json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
    state = random.getstate()
    random.seed(int(hashlib.sha256(content.encode("utf-8")).hexdigest()[:16], 16))
    try:
        return template.apply(row), template.get_answer_choices_list(row)
    finally:
        random.setstate(state)


def render_row(task: TaskSpec, template, row: dict, where: str) -> dict | None:
    """Render one row with one template; return None when the template does not apply to the row."""
    try:
        label = task.label_of(row)
    except LabelError as error:
        raise RowValidationError(f"{where}: {error}") from None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        applied, choices = _apply(template, row)
    if len(applied) < 2 or not applied[0].strip():
        return None

    input_text, target = applied[0], applied[1]
    choices = [choice.strip() for choice in choices or []]
    if not choices or not all(choices):
        raise RowValidationError(
            f"{where}: template {template.name!r} gives the answer choices {choices} (from "
            f"{template.answer_choices!r}); every choice must be non-empty text, so check those row fields"
        )
    if not 0 <= label < len(choices):
        raise RowValidationError(
            f"{where}: field {task.label_field!r} = {row.get(task.label_field)!r} gives label {label}, outside "
            f"the {len(choices)} answer choices of template {template.name!r}"
        )
    if target.strip() != choices[label]:
        raise RowValidationError(
            f"{where}: template {template.name!r} renders target {target!r} but answer choice {label} "
            f"(field {task.label_field!r}) is {choices[label]!r}"
        )
    return {"input": input_text, "choices": choices, "label": label}


def _check_fields(task: TaskSpec, row: dict, where: str) -> None:
    # Jinja renders a missing field as empty text, so a missing field would otherwise pass unnoticed.
    for name in task.fields:
        if name not in row:
            raise RowValidationError(f"{where}: missing field {name!r} (row has {sorted(row)})")


def _where(rows: list[dict], source: str, index: int) -> str:
    location = getattr(rows, "location", None)
    return location(index) if location is not None else f"{source} row {index + 1}"


def render_rows(task: TaskSpec, rows: list[dict], source: str,
                selection: str = "paper") -> tuple[list[dict], list[RenderStats]]:
    """Render every row with every selected template; skipped rows are counted per template.

    An example is {task, template, template_index, template_hash, promptsource_version, example_index, input,
    choices, label}; `example_index` is the row's position in `rows`. Rows that are a `tfew.data.Rows` name
    their file and line in errors, other lists use `source`.
    """
    version = promptsource_version()
    for index, row in enumerate(rows):
        _check_fields(task, row, _where(rows, source, index))

    examples: list[dict] = []
    stats: list[RenderStats] = []
    for template_index, template in enumerate(select_templates(task, selection)):
        counts = RenderStats(template.name, template_index, template_hash(template))
        for row_index, row in enumerate(rows):
            rendered = render_row(task, template, row, where=_where(rows, source, row_index))
            if rendered is None:
                counts.skipped += 1
                counts.skipped_indices.append(row_index)
                continue
            counts.rendered += 1
            examples.append(
                {
                    "task": task.name,
                    "template": template.name,
                    "template_index": template_index,
                    "template_hash": counts.template_hash,
                    "promptsource_version": version,
                    "example_index": row_index,
                    **rendered,
                }
            )
        if counts.skipped:
            log.info(
                "%s (%s): template %r does not apply to %d of %d rows; they are skipped and counted",
                task.name, source, template.name, counts.skipped, len(rows),
            )
        stats.append(counts)
    return examples, stats
