"""`tfew data export` writes a mirror that loads back exactly as the hub served it.

The hub is replaced by a local `datasets` source: `datasets.Dataset.from_list` over real rows from the
offline mirror, with the hub's column types (ClassLabel ints, Winogrande's string answers, HellaSwag's
string labels). Official files come from a `file://` copy of r-three/t-few's layout.
"""

import json

import datasets
import pytest

import tfew.official
from tfew.cli import main
from tfew.data import load_few_shot, load_split, read_jsonl, sha256_of
from tfew.errors import TfewError
from tfew.export import export_mirror, import_story_cloze, parse_revisions
from tfew.official import official_few_shot_seeds
from tfew.prepare import prepare_task
from tfew.story_cloze import CSV_FILES
from tfew.tasks import ANLI_REVISION, SUPER_GLUE_REVISION, get_task


def strip_tfew_fields(task_name, rows):
    """Turn official few-shot rows back into hub rows: drop the fields T-Few's reader adds."""
    task = get_task(task_name)
    hub_rows = [{field: row[field] for field in task.fields} for row in rows]
    if task_name == "hellaswag":
        for row in hub_rows:
            row["label"] = str(row["label"])
    return hub_rows


def few_shot_rows(mirror, name):
    return list(read_jsonl(mirror / "few_shot" / name))


# Every test here may fetch official files, always from local file:// copies.
pytestmark = pytest.mark.usefixtures("local_downloads_only")


@pytest.fixture()
def hub(mirror, monkeypatch):
    """A fake hub serving real rows per (hub id, config, split); records every call."""
    rte = list(load_split(get_task("rte"), "validation", mirror))
    served = {
        ("aps/super_glue", "rte", "validation"): rte,
        ("aps/super_glue", "rte", "train"): few_shot_rows(mirror, "rte/32_shot/0_seed.jsonl")
        + few_shot_rows(mirror, "rte/32_shot/1_seed.jsonl"),
        ("allenai/winogrande", "winogrande_xl", "train"): strip_tfew_fields(
            "winogrande", few_shot_rows(mirror, "winogrande/50_shot/0_seed.jsonl")),
        ("allenai/winogrande", "winogrande_xl", "validation"): strip_tfew_fields(
            "winogrande", few_shot_rows(mirror, "winogrande/50_shot/1_seed.jsonl")),
        ("Rowan/hellaswag", None, "train"): strip_tfew_fields(
            "hellaswag", few_shot_rows(mirror, "h-swag/20_shot/0_seed.jsonl")),
        ("Rowan/hellaswag", None, "validation"): strip_tfew_fields(
            "hellaswag", few_shot_rows(mirror, "h-swag/20_shot/1_seed.jsonl")),
        ("facebook/anli", "plain_text", "train_r1"): strip_tfew_fields(
            "anli_r1", few_shot_rows(mirror, "anli-r1/50_shot/0_seed.jsonl")),
        ("facebook/anli", "plain_text", "test_r1"): strip_tfew_fields(
            "anli_r1", few_shot_rows(mirror, "anli-r1/50_shot/1_seed.jsonl")),
    }
    class_labels = {
        "aps/super_glue": ["entailment", "not_entailment"],
        "facebook/anli": ["entailment", "neutral", "contradiction"],
    }
    calls = []

    def load_dataset(path, name=None, split=None, revision=None, **kwargs):
        calls.append((path, name, split, revision))
        if (path, name, split) not in served:
            raise ValueError(f"Unknown split {split!r} of {path}/{name}")
        rows = served[(path, name, split)]
        dataset = datasets.Dataset.from_list(rows)
        if path in class_labels:
            dataset = dataset.cast_column("label", datasets.ClassLabel(names=class_labels[path]))
        return dataset

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return {"served": served, "calls": calls}


@pytest.fixture()
def repository(mirror, tmp_path, monkeypatch):
    """A file:// copy of r-three/t-few's layout at the pinned commit, used as the download source."""
    root = tmp_path / "t-few"
    (root / "data").mkdir(parents=True)
    (root / "data" / "few_shot").symlink_to(mirror / "few_shot")
    (root / "pretrained_checkpoints").symlink_to(mirror / "checkpoints")
    monkeypatch.setattr(tfew.official, "OFFICIAL_BASE_URL", root.as_uri() + "/")
    return root


EXPORTED = ("rte", "winogrande", "hellaswag", "anli_r1")


def test_export_reads_back_identically(hub, repository, mirror, tmp_path):
    out = tmp_path / "mirror"
    record = export_mirror(list(EXPORTED), out)

    for name in EXPORTED:
        task = get_task(name)
        for split in (task.train_split, task.eval_split):
            from_hub = load_split(task, split, None)
            from_mirror = load_split(task, split, out)
            assert from_mirror == from_hub, (name, split)
            assert from_mirror.location(0).startswith(str(out / "datasets" / task.hub_id))
            entry = record["files"][f"datasets/{task.hub_id}/{task.mirror_config}/{split}.jsonl"]
            assert entry["rows"] == len(from_hub)
        for seed in official_few_shot_seeds(task):
            assert load_few_shot(task, seed, out) == load_few_shot(task, seed, mirror), (name, seed)

    assert ("aps/super_glue", "rte", "train", SUPER_GLUE_REVISION) in hub["calls"]
    assert ("facebook/anli", "plain_text", "test_r1", ANLI_REVISION) in hub["calls"]
    assert json.loads((out / "tfew_export.json").read_text())["files"] == record["files"]


def test_exported_labels_keep_hub_types(hub, repository, tmp_path):
    out = tmp_path / "mirror"
    export_mirror(["winogrande", "hellaswag"], out, parts=("rows",))
    winogrande = read_jsonl(out / "datasets/allenai/winogrande/winogrande_xl/validation.jsonl")
    assert {row["answer"] for row in winogrande} <= {"1", "2"}
    hellaswag = read_jsonl(out / "datasets/Rowan/hellaswag/default/train.jsonl")
    assert all(isinstance(row["label"], str) for row in hellaswag)
    assert not (out / "few_shot").exists()


def test_prepare_from_hub_matches_prepare_from_mirror(hub, repository, mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("TFEW_CACHE_DIR", str(tmp_path / "cache"))
    prepare_task("rte", [0], tmp_path / "hub", None, max_eval_examples=8)
    prepare_task("rte", [0], tmp_path / "mirror", mirror, max_eval_examples=8)
    for name in ("eval.jsonl", "few_shot_seed0.jsonl", "render_counts.csv"):
        assert (tmp_path / "hub" / name).read_bytes() == (tmp_path / "mirror" / name).read_bytes(), name

    hub_info = json.loads((tmp_path / "hub" / "render_stats.json").read_text())
    mirror_info = json.loads((tmp_path / "mirror" / "render_stats.json").read_text())
    assert hub_info["source"] == "hub"
    assert hub_info["sources"]["eval"]["rows_sha256"] == mirror_info["sources"]["eval"]["rows_sha256"]
    assert SUPER_GLUE_REVISION in hub_info["sources"]["eval"]["origin"]
    assert hub_info["sources"]["few_shot_seed0"]["sha256"] == mirror_info["sources"]["few_shot_seed0"]["sha256"]


def test_export_command_with_revision(hub, repository, tmp_path, capsys):
    out = tmp_path / "mirror"
    status = main(["data", "export", "--tasks", "rte", "--to", str(out), "--revision", "rte=0123abcd"])
    assert status == 0
    assert ("aps/super_glue", "rte", "validation", "0123abcd") in hub["calls"]
    assert "tfew_export.json" in capsys.readouterr().out

    status = main(["data", "prepare", "--task", "rte", "--seeds", "0", "42", "--mirror", str(out),
                   "--max-eval-examples", "5", "--out", str(tmp_path / "prepared")])
    assert status == 0
    assert len(read_jsonl(tmp_path / "prepared" / "eval.jsonl")) == 5 * 10
    assert len(read_jsonl(tmp_path / "prepared" / "few_shot_seed42.jsonl")) == 32 * 10


def test_export_checkpoint(repository, mirror, tmp_path):
    out = tmp_path / "mirror"
    export_mirror([], out, parts=("checkpoints",))
    path = out / "checkpoints" / "t03b_ia3_finish.pt"
    assert sha256_of(path) == sha256_of(mirror / "checkpoints" / "t03b_ia3_finish.pt")


def story_cloze_folder(mirror, tmp_path):
    folder = tmp_path / "story_cloze"
    folder.mkdir()
    (folder / CSV_FILES["validation"]).symlink_to(mirror / "raw" / "story_cloze" / "validation_2016.csv")
    (folder / CSV_FILES["test"]).symlink_to(mirror / "raw" / "story_cloze" / "test_2016.csv")
    return folder


def test_export_story_cloze_from_csv_folder(repository, mirror, tmp_path):
    out = tmp_path / "mirror"
    export_mirror(["story_cloze"], out, story_cloze_dir=story_cloze_folder(mirror, tmp_path))
    task = get_task("story_cloze")
    for split in ("validation", "test"):
        assert load_split(task, split, out) == load_split(task, split, mirror)
    for seed in official_few_shot_seeds(task):
        assert (out / "few_shot" / "storycloze" / "70_shot" / f"{seed}_seed.jsonl").is_file()


def test_import_story_cloze_command(mirror, tmp_path):
    out = tmp_path / "mirror"
    raw = mirror / "raw" / "story_cloze"
    status = main(["data", "import-story-cloze", "--validation", str(raw / "validation_2016.csv"),
                   "--test", str(raw / "test_2016.csv"), "--to", str(out)])
    assert status == 0
    task = get_task("story_cloze")
    assert load_split(task, "test", out) == load_split(task, "test", mirror)


def test_import_story_cloze_missing_files(tmp_path, capsys):
    status = main(["data", "import-story-cloze", "--csv-dir", str(tmp_path), "--to", str(tmp_path / "out")])
    assert status == 2
    error = capsys.readouterr().err
    assert CSV_FILES["validation"] in error
    assert CSV_FILES["test"] in error
    assert str(tmp_path) in error


def test_import_story_cloze_function_writes_record(mirror, tmp_path):
    raw = mirror / "raw" / "story_cloze"
    record = import_story_cloze(raw / "validation_2016.csv", raw / "test_2016.csv", tmp_path)
    entry = record["files"]["datasets/LSDSem/story_cloze/2016/validation.jsonl"]
    assert entry["rows"] == 1871
    assert entry["origin"] == str(raw / "validation_2016.csv")


@pytest.mark.parametrize("item", ["winogrande", "winogrande=", "=abc", "nonsense=abc"])
def test_malformed_revision_is_rejected(item):
    with pytest.raises(TfewError):
        parse_revisions([item])


def test_unknown_export_part_is_rejected(tmp_path):
    with pytest.raises(TfewError) as error:
        export_mirror(["rte"], tmp_path, parts=("rows", "models"))
    assert "models" in str(error.value)
