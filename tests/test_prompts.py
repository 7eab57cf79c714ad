"""promptsource templates on real rows of all eleven tasks: answer choices, labels, skips and row errors."""

import hashlib
import json
import random

import pytest

from tfew.data import load_few_shot, load_split, read_jsonl, write_jsonl
from tfew.errors import RowValidationError
from tfew.prepare import prepare_task, read_render_counts
from tfew.prompts import original_task_templates, promptsource_version, render_rows, select_templates
from tfew.tasks import TASKS, get_task

# Original-task templates in promptsource 0.2.3 and answer choices per example.
TEMPLATE_COUNTS = {
    "rte": 10, "cb": 15, "copa": 12, "wic": 10, "wsc": 10, "winogrande": 5, "hellaswag": 4, "story_cloze": 5,
    "anli_r1": 15, "anli_r2": 15, "anli_r3": 15,
}
NUM_CHOICES = {
    "rte": 2, "cb": 3, "copa": 2, "wic": 2, "wsc": 2, "winogrande": 2, "hellaswag": 4, "story_cloze": 2,
    "anli_r1": 3, "anli_r2": 3, "anli_r3": 3,
}
EVAL_TASKS = ("rte", "cb", "copa", "wic", "wsc", "story_cloze")
EVAL_ROWS_CHECKED = 32

# COPA templates of promptsource 0.2.3 that ask about one question type only. They sort after the first 8,
# which are the ones Liu et al. 2022 keep.
EFFECT_ONLY = ("…As a result, C1 or C2?", "…What could happen next, C1 or C2?")
CAUSE_ONLY = ("…which may be caused by", "…why? C1 or C2")


def correct_text(task_name, row):
    """The correct answer's text read from the row, for tasks whose answer choices are row fields."""
    if task_name == "copa":
        return [row["choice1"], row["choice2"]][row["label"]]
    if task_name == "winogrande":
        return [row["option1"], row["option2"]][int(row["answer"]) - 1]
    if task_name == "story_cloze":
        return [row["sentence_quiz1"], row["sentence_quiz2"]][row["answer_right_ending"] - 1]
    if task_name == "hellaswag":
        return row["endings"][int(row["label"])]
    return None


def check_examples(task_name, rows, examples, stats):
    task = get_task(task_name)
    templates = original_task_templates(task)
    fixed_choices = {template.name: template.get_fixed_answer_choices_list() for template in templates}
    assert len(stats) == len(templates) == TEMPLATE_COUNTS[task_name]
    for example in examples:
        row = rows[example["example_index"]]
        assert example["label"] == task.label_of(row)
        assert len(example["choices"]) == NUM_CHOICES[task_name]
        assert all(choice.strip() for choice in example["choices"])
        fixed = fixed_choices[example["template"]]
        expected = correct_text(task_name, row)
        if fixed is not None:
            assert example["choices"] == fixed
        elif expected is not None:
            assert example["choices"][example["label"]] == expected.strip()


@pytest.mark.parametrize("task_name", sorted(TASKS))
def test_few_shot_rows_render_with_every_template(mirror, task_name):
    task = get_task(task_name)
    rows = load_few_shot(task, 0, mirror)
    examples, stats = render_rows(task, rows, "few-shot", selection="original")
    check_examples(task_name, rows, examples, stats)
    if task_name != "copa":
        assert all(s.rendered == len(rows) and s.skipped == 0 for s in stats)
        assert len(examples) == len(rows) * TEMPLATE_COUNTS[task_name]


@pytest.mark.parametrize("task_name", EVAL_TASKS)
def test_eval_rows_render_with_every_template(mirror, task_name):
    task = get_task(task_name)
    rows = load_split(task, task.eval_split, mirror)[:EVAL_ROWS_CHECKED]
    examples, stats = render_rows(task, rows, "eval", selection="original")
    check_examples(task_name, rows, examples, stats)
    assert sum(s.rendered + s.skipped for s in stats) == len(rows) * TEMPLATE_COUNTS[task_name]


def test_paper_selection_keeps_first_eight_copa_templates():
    copa = get_task("copa")
    names = [template.name for template in select_templates(copa)]
    assert names == [template.name for template in original_task_templates(copa)][:8]
    assert not set(names) & set(EFFECT_ONLY + CAUSE_ONLY)
    for name, count in TEMPLATE_COUNTS.items():
        expected = 8 if name == "copa" else count
        assert len(select_templates(get_task(name))) == expected, name


def test_examples_record_version_and_template_hash(mirror):
    task = get_task("cb")
    examples, _ = render_rows(task, load_few_shot(task, 0, mirror), "cb")
    templates = {template.name: template for template in select_templates(task)}
    assert {example["promptsource_version"] for example in examples} == {promptsource_version()} == {"0.2.3"}
    for example in examples:
        template = templates[example["template"]]
        source = template.jinja + "\n" + template.answer_choices
        assert example["template_hash"] == hashlib.sha256(source.encode()).hexdigest()[:16]
    assert len({example["template_hash"] for example in examples}) == len(templates)


def test_randomized_hellaswag_template_is_reproducible(mirror):
    task = get_task("hellaswag")
    rows = load_few_shot(task, 0, mirror)
    random.seed(1)
    first, _ = render_rows(task, rows, "h-swag")
    state = random.getstate()
    random.seed(2)
    random.random()
    second, _ = render_rows(task, rows, "h-swag")
    assert [e["input"] for e in first] == [e["input"] for e in second]

    random.setstate(state)
    render_rows(task, rows, "h-swag")
    assert random.getstate() == state
    randomized = [e["input"] for e in first if e["template"] == "Randomized prompts template"]
    assert len(randomized) == len(rows)
    assert len({text.split("\n")[0] for text in randomized}) > 1  # the instruction still varies across rows


def set_field(index, field, value):
    def change(rows):
        rows[index][field] = value
    return change


def delete_field(index, field):
    def change(rows):
        del rows[index][field]
    return change


def empty_endings(rows):
    rows[1]["endings"] = []
    rows[1]["label"] = 0


# (task, rows kept, change to a real row, line of the bad row after one blank line, message fragments)
BAD_ROWS = {
    "label outside choices": ("cb", 3, set_field(1, "label", 5), 3, ["'label'", "outside the 3 answer choices"]),
    "empty answer choice": ("copa", 2, set_field(0, "choice1", "  "), 1, ["choice1", "answer choices"]),
    "empty choice list": ("hellaswag", 2, empty_endings, 3, ["endings", "answer choices"]),
    "missing field": ("wic", 4, delete_field(3, "sentence2"), 5, ["missing field 'sentence2'"]),
    "unlabeled row": ("winogrande", 2, set_field(1, "answer", ""), 3, ["'answer'", "unlabeled"]),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_row_names_file_line_and_field(mirror, tmp_path, case):
    task_name, kept, change, line, fragments = BAD_ROWS[case]
    task = get_task(task_name)
    rows = [dict(row) for row in load_few_shot(task, 0, mirror)[:kept]]
    change(rows)
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, rows)
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n")  # a blank line shifts later line numbers

    with pytest.raises(RowValidationError) as error:
        render_rows(task, read_jsonl(path), task_name)
    message = str(error.value)
    assert f"{path}:{line}:" in message
    for fragment in fragments:
        assert fragment in message


def test_prepare_counts_copa_rows_each_template_skips(mirror, tmp_path):
    prepare_task("copa", [0], tmp_path, mirror, templates="original")
    info = json.loads((tmp_path / "render_stats.json").read_text())
    rows = load_split(get_task("copa"), "validation", mirror)
    causes = [i for i, row in enumerate(rows) if row["question"] == "cause"]
    effects = [i for i, row in enumerate(rows) if row["question"] == "effect"]
    assert len(causes) + len(effects) == len(rows) == 100

    eval_stats = info["render_stats"]["eval"]
    for name in EFFECT_ONLY:
        assert eval_stats[name]["skipped_example_indices"] == causes
        assert eval_stats[name]["rendered"] == len(effects)
    for name in CAUSE_ONLY:
        assert eval_stats[name]["skipped_example_indices"] == effects
        assert eval_stats[name]["rendered"] == len(causes)
    for template in select_templates(get_task("copa")):
        assert eval_stats[template.name]["skipped"] == 0, template.name
    assert info["template_selection"] == "original"
    assert info["promptsource_version"] == "0.2.3"

    from_csv = read_render_counts(tmp_path / "render_counts.csv")
    from_json = read_render_counts(tmp_path / "render_stats.json")
    assert from_csv == from_json
    assert len(from_csv) == 2 * 12
    eval_jsonl = read_jsonl(tmp_path / "eval.jsonl")
    assert len(eval_jsonl) == sum(row["rendered"] for row in from_csv if row["split"] == "eval")
