"""Loading task rows: mirror files, hub datasets (through a local `datasets` source) and StoryCloze CSV files."""

import datasets
import pytest

from tfew.data import Rows, load_split, read_jsonl, rows_sha256, tfew_reader_rows
from tfew.errors import DataNotFoundError, RowValidationError
from tfew.prompts import render_rows
from tfew.story_cloze import CSV_FILES, read_story_cloze_csv
from tfew.tasks import SUPER_GLUE_REVISION, get_task

EVAL_ROWS = {"rte": 277, "cb": 56, "copa": 100, "wic": 638, "wsc": 104, "story_cloze": 1871}


@pytest.mark.parametrize("task_name", sorted(EVAL_ROWS))
def test_mirror_eval_split_loads(mirror, task_name):
    task = get_task(task_name)
    rows = load_split(task, task.eval_split, mirror)
    assert len(rows) == EVAL_ROWS[task_name]
    assert all(set(task.fields) <= set(row) for row in rows)
    labels = {task.label_of(row) for row in rows}
    assert labels == set(range(3 if task_name == "cb" else 2))


def test_rows_remember_file_and_line(mirror):
    task = get_task("cb")
    rows = load_split(task, "validation", mirror)
    path = mirror / "datasets" / "aps/super_glue/cb/validation.jsonl"
    assert rows.location(0) == f"{path}:1"
    part = rows[10:12]
    assert isinstance(part, Rows)
    assert part.location(1) == f"{path}:12"
    assert part == list(rows)[10:12]


def test_story_cloze_csv_reads_as_mirror_rows(mirror):
    task = get_task("story_cloze")
    for split, csv_name in (("validation", "validation_2016.csv"), ("test", "test_2016.csv")):
        from_csv = read_story_cloze_csv(mirror / "raw" / "story_cloze" / csv_name)
        assert from_csv == list(load_split(task, split, mirror))
        assert list(from_csv[0]) == list(task.fields)


def test_story_cloze_missing_csv_names_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TFEW_STORY_CLOZE_DIR", str(tmp_path))
    with pytest.raises(DataNotFoundError) as error:
        load_split(get_task("story_cloze"), "test", None)
    message = str(error.value)
    assert CSV_FILES["test"] in message
    assert CSV_FILES["validation"] in message
    assert str(tmp_path) in message
    assert "https://cs.rochester.edu/nlp/rocstories/" in message
    assert "tfew data import-story-cloze" in message


def test_story_cloze_from_csv_folder(mirror, tmp_path, monkeypatch):
    (tmp_path / CSV_FILES["test"]).symlink_to(mirror / "raw" / "story_cloze" / "test_2016.csv")
    monkeypatch.setenv("TFEW_STORY_CLOZE_DIR", str(tmp_path))
    task = get_task("story_cloze")
    rows = load_split(task, "test", None)
    assert rows == list(load_split(task, "test", mirror))
    assert CSV_FILES["test"] in rows.location(0)


def write_csv(path, lines):
    header = "InputStoryid,InputSentence1,InputSentence2,InputSentence3,InputSentence4," \
             "RandomFifthSentenceQuiz1,RandomFifthSentenceQuiz2,AnswerRightEnding"
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def test_story_cloze_invalid_answer_ending(tmp_path):
    path = write_csv(tmp_path / "bad.csv", ["a,One.,Two.,Three.,Four.,NA,Six.,1", "b,One.,Two.,Three.,Four.,Five.,Six.,3"])
    with pytest.raises(RowValidationError) as error:
        read_story_cloze_csv(path)
    assert f"{path}:3" in str(error.value)
    assert "AnswerRightEnding" in str(error.value)


def test_story_cloze_keeps_text_that_looks_missing(tmp_path):
    path = write_csv(tmp_path / "na.csv", ["a,One.,Two.,Three.,Four.,NA,None,2"])
    rows = read_story_cloze_csv(path)
    assert rows[0]["sentence_quiz1"] == "NA"
    assert rows[0]["sentence_quiz2"] == "None"
    assert rows[0]["answer_right_ending"] == 2


def test_story_cloze_csv_without_expected_columns_is_rejected(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("story,ending\nx,y\n")
    with pytest.raises(RowValidationError) as error:
        read_story_cloze_csv(path)
    assert "AnswerRightEnding" in str(error.value)


def rte_features():
    return datasets.Features(
        {
            "premise": datasets.Value("string"),
            "hypothesis": datasets.Value("string"),
            "idx": datasets.Value("int32"),
            "label": datasets.ClassLabel(names=["entailment", "not_entailment"]),
        }
    )


def fake_hub(monkeypatch, rows_by_split, features=None):
    """Serve `datasets.load_dataset` from local rows and record each call's arguments."""
    calls = []

    def load_dataset(path, name=None, split=None, revision=None, **kwargs):
        calls.append({"path": path, "name": name, "split": split, "revision": revision})
        if split not in rows_by_split:
            raise ValueError(f"Unknown split {split!r}")
        return datasets.Dataset.from_list(rows_by_split[split], features=features)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_hub_split_loads_at_pinned_revision(mirror, monkeypatch):
    task = get_task("rte")
    mirror_rows = load_split(task, "validation", mirror)
    calls = fake_hub(monkeypatch, {"validation": list(mirror_rows)}, rte_features())

    rows = load_split(task, "validation", None)
    assert rows == list(mirror_rows)
    assert rows_sha256(rows) == rows_sha256(mirror_rows)
    assert calls == [{"path": "aps/super_glue", "name": "rte", "split": "validation", "revision": SUPER_GLUE_REVISION}]
    assert rows.location(4) == f"hub aps/super_glue/rte split validation (revision {SUPER_GLUE_REVISION}) row 5"

    load_split(task, "validation", None, revision="abc123")
    assert calls[-1]["revision"] == "abc123"


def test_unknown_hub_split_names_dataset(monkeypatch):
    fake_hub(monkeypatch, {})
    with pytest.raises(DataNotFoundError) as error:
        load_split(get_task("anli_r1"), "test_r1", None)
    assert "facebook/anli" in str(error.value)
    assert "'test_r1'" in str(error.value)


def test_unlabeled_hub_test_rows_are_rejected(mirror, monkeypatch):
    task = get_task("rte")
    rows = [dict(row, label=-1) for row in load_split(task, "validation", mirror)[:3]]
    fake_hub(monkeypatch, {"test": rows}, rte_features())
    with pytest.raises(RowValidationError) as error:
        render_rows(task, load_split(task, "test", None), "rte test")
    assert "split test" in str(error.value)
    assert "row 1" in str(error.value)
    assert "unlabeled" in str(error.value)


def test_tfew_reader_fields_for_hub_rows(mirror):
    winogrande = get_task("winogrande")
    official = read_jsonl(mirror / "few_shot" / "winogrande/50_shot/0_seed.jsonl")
    hub_rows = [{key: row[key] for key in winogrande.fields} for row in official]
    converted = tfew_reader_rows(winogrande, Rows(hub_rows, "winogrande"))
    assert [row["label"] for row in converted] == [row["label"] for row in official]
    assert [row["idx"] for row in converted] == list(range(len(official)))

    hellaswag = get_task("hellaswag")
    official = read_jsonl(mirror / "few_shot" / "h-swag/20_shot/0_seed.jsonl")
    hub_rows = [dict({key: row[key] for key in hellaswag.fields}, label=str(row["label"])) for row in official]
    converted = tfew_reader_rows(hellaswag, Rows(hub_rows, "hellaswag"))
    assert [row["label"] for row in converted] == [row["label"] for row in official]
    assert all(isinstance(row["label"], int) for row in converted)


def test_tfew_reader_rejects_unlabeled_training_row():
    rows = Rows([{"sentence": "_ won.", "option1": "A", "option2": "B", "answer": ""}], "winogrande train")
    with pytest.raises(RowValidationError) as error:
        tfew_reader_rows(get_task("winogrande"), rows)
    assert "winogrande train row 1" in str(error.value)
    assert "'answer'" in str(error.value)


def test_revision_with_loading_script_names_the_fix(monkeypatch):
    def load_dataset(path, name=None, split=None, revision=None, **kwargs):
        raise RuntimeError("Dataset scripts are no longer supported, but found hellaswag.py")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    with pytest.raises(DataNotFoundError) as error:
        load_split(get_task("hellaswag"), "validation", None)
    assert "Rowan/hellaswag" in str(error.value)
    assert "--hub-revision" in str(error.value)
