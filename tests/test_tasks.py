"""The task registry: hub ids, splits, shots and label conversions of the eleven held-out tasks."""

import re

import pytest

from tfew.cli import main
from tfew.errors import TfewError
from tfew.tasks import DEFAULT_SEEDS, TASKS, LabelError, get_task

# (hub id, config, promptsource key, train split, eval split, shots, few-shot folder in r-three/t-few)
EXPECTED = {
    "rte": ("aps/super_glue", "rte", ("super_glue", "rte"), "train", "validation", 32, "rte"),
    "cb": ("aps/super_glue", "cb", ("super_glue", "cb"), "train", "validation", 32, "cb"),
    "copa": ("aps/super_glue", "copa", ("super_glue", "copa"), "train", "validation", 32, "copa"),
    "wic": ("aps/super_glue", "wic", ("super_glue", "wic"), "train", "validation", 32, "wic"),
    "wsc": ("aps/super_glue", "wsc.fixed", ("super_glue", "wsc.fixed"), "train", "validation", 32, "wsc"),
    "winogrande": ("allenai/winogrande", "winogrande_xl", ("winogrande", "winogrande_xl"), "train", "validation",
                   50, "winogrande"),
    "hellaswag": ("Rowan/hellaswag", None, ("hellaswag", None), "train", "validation", 20, "h-swag"),
    "story_cloze": ("LSDSem/story_cloze", "2016", ("story_cloze", "2016"), "validation", "test", 70, "storycloze"),
    "anli_r1": ("facebook/anli", "plain_text", ("anli", None), "train_r1", "test_r1", 50, "anli-r1"),
    "anli_r2": ("facebook/anli", "plain_text", ("anli", None), "train_r2", "test_r2", 50, "anli-r2"),
    "anli_r3": ("facebook/anli", "plain_text", ("anli", None), "train_r3", "test_r3", 50, "anli-r3"),
}


def test_registry_has_eleven_tasks():
    assert set(TASKS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registry_entry(name):
    task = get_task(name)
    hub_id, config, key, train_split, eval_split, shots, few_shot_dir = EXPECTED[name]
    assert task.hub_id == hub_id
    assert task.hub_config == config
    assert task.promptsource_key == key
    assert task.train_split == train_split
    assert task.eval_split == eval_split
    assert task.num_shots == shots
    assert task.few_shot_dir == few_shot_dir


def test_hub_ids_are_namespaced():
    # datasets 4 and later no longer resolve the bare legacy names.
    for task in TASKS.values():
        assert "/" in task.hub_id, task.name


def test_revisions_are_commit_shas_or_unpinned():
    for task in TASKS.values():
        assert task.hub_revision is None or re.fullmatch(r"[0-9a-f]{40}", task.hub_revision), task.name


def test_story_cloze_config_is_a_string():
    assert get_task("story_cloze").hub_config == "2016"
    assert get_task("story_cloze").manual_download


def test_default_seeds():
    assert DEFAULT_SEEDS == (0, 1, 32, 42, 1024)


def test_unknown_task_lists_known_names():
    with pytest.raises(TfewError) as error:
        get_task("superglue-rte")
    assert "'superglue-rte'" in str(error.value)
    assert "anli_r1" in str(error.value)


@pytest.mark.parametrize(
    ("name", "row", "label"),
    [
        ("rte", {"label": 1}, 1),
        ("cb", {"label": 2}, 2),
        ("winogrande", {"answer": "1"}, 0),
        ("winogrande", {"answer": "2"}, 1),
        ("story_cloze", {"answer_right_ending": 1}, 0),
        ("story_cloze", {"answer_right_ending": 2}, 1),
        ("hellaswag", {"label": "3"}, 3),
        ("hellaswag", {"label": 0}, 0),
        ("anli_r2", {"label": 2}, 2),
    ],
)
def test_label_conversion(name, row, label):
    assert get_task(name).label_of(row) == label


@pytest.mark.parametrize(
    ("name", "row"),
    [
        ("rte", {"label": -1}),
        ("copa", {"label": -1}),
        ("winogrande", {"answer": ""}),
        ("hellaswag", {"label": ""}),
        ("anli_r1", {"label": -1}),
    ],
)
def test_unlabeled_rows_are_rejected(name, row):
    task = get_task(name)
    with pytest.raises(LabelError) as error:
        task.label_of(row)
    assert "unlabeled" in str(error.value)
    assert error.value.field == task.label_field


@pytest.mark.parametrize(
    ("name", "row"),
    [("rte", {}), ("winogrande", {"answer": "one"}), ("rte", {"label": True}), ("hellaswag", {"label": None})],
)
def test_malformed_labels_are_rejected(name, row):
    with pytest.raises(LabelError) as error:
        get_task(name).label_of(row)
    assert get_task(name).label_field in str(error.value)


def test_data_list_prints_registry(capsys):
    assert main(["data", "list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    header, rows = lines[0].split(), lines[1:]
    assert header[0] == "task"
    assert "templates" in header
    assert len(rows) == 11
    by_task = {row.split()[0]: row for row in rows}
    assert "aps/super_glue/wsc.fixed" in by_task["wsc"]
    assert "allenai/winogrande/winogrande_xl" in by_task["winogrande"]
    assert "train_r3" in by_task["anli_r3"]
    assert "test_r3" in by_task["anli_r3"]
    assert "8 of 12" in by_task["copa"]
    assert "4 of 4" in by_task["hellaswag"]
    assert "15 of 15" in by_task["anli_r1"]
    assert re.search(r"validation\s+test\s+70\s", by_task["story_cloze"])
