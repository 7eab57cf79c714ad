"""Apply promptsource templates to task rows: input text, answer choices and label index.

Every rendered example records the promptsource version and a hash of its template's Jinja source, because
template wording changed between promptsource releases and moves accuracy by points.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

from tfew.errors import RowValidationError, TfewError
from tfew.tasks import TaskSpec

log = logging.getLogger(__name__)


@dataclass
class RenderStats:
    """Counts of rows rendered and skipped by one template."""

    template_name: str
    rendered: int = 0
    skipped: int = 0
    skipped_indices: list[int] = field(default_factory=list)


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


def select_templates(task: TaskSpec) -> list:
    """Return the task's original-task templates, ordered by name, cut to the task's maximum."""
    collection = _dataset_templates(*task.promptsource_key)
    names = [
        name
        for name in collection.all_template_names
        if collection[name].metadata.original_task
    ]
    if task.max_templates is not None:
        names = names[: task.max_templates]
    if not names:
        raise TfewError(
            f"{task.name}: promptsource has no original-task templates for {task.promptsource_key}; "
            f"check the promptsource key (templates live under the old bare dataset names) and version."
        )
    return [collection[name] for name in names]


def template_hash(template) -> str:
    """Return the first 16 hex digits of the sha256 of a template's Jinja source and answer choices."""
    source = template.jinja + "\n" + (template.answer_choices or "")
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def render_row(task: TaskSpec, template, row: dict, where: str) -> dict | None:
    """Render one row with one template; return None when the template does not apply to the row."""
    label = task.label_fn(row)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        applied = template.apply(row)
        choices = template.get_answer_choices_list(row)
    if len(applied) < 2 or not applied[0].strip():
        return None

    input_text, target = applied[0], applied[1]
    if not choices:
        raise RowValidationError(f"{where}: template {template.name!r} gives an empty answer-choice list")
    if not 0 <= label < len(choices):
        raise RowValidationError(
            f"{where}: field {task.label_field!r} gives label {label}, outside the {len(choices)} answer "
            f"choices of template {template.name!r}"
        )
    if target.strip() != choices[label].strip():
        raise RowValidationError(
            f"{where}: template {template.name!r} renders target {target!r} but answer choice {label} is "
            f"{choices[label]!r}"
        )
    return {"input": input_text, "choices": [c.strip() for c in choices], "label": label}


def render_rows(task: TaskSpec, rows: list[dict], source: str) -> tuple[list[dict], list[RenderStats]]:
    """Render every row with every selected template; skipped rows are counted per template."""
    version = promptsource_version()
    examples: list[dict] = []
    stats: list[RenderStats] = []
    for template_index, template in enumerate(select_templates(task)):
        counts = RenderStats(template.name)
        digest = template_hash(template)
        for row_index, row in enumerate(rows):
            rendered = render_row(task, template, row, where=f"{source} row {row_index + 1}")
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
                    "template_hash": digest,
                    "promptsource_version": version,
                    "example_index": row_index,
                    **rendered,
                }
            )
        if counts.skipped:
            log.info("%s: template %r skipped %d of %d rows", task.name, template.name, counts.skipped, len(rows))
        stats.append(counts)
    return examples, stats
