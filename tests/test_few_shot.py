"""Few-shot splits: T-Few's official files (mirror or pinned download, sha256-checked) and seeded sampling."""

import logging
import shutil

import numpy as np
import pytest

import tfew.official
from tfew.data import load_few_shot, sample_few_shot, sha256_of
from tfew.errors import DataNotFoundError, RowValidationError
from tfew.official import ChecksumError, fetch_official_few_shot, official_few_shot_seeds, official_files
from tfew.tasks import DEFAULT_SEEDS, TASKS, get_task

PINNED_URL = (
    "https://raw.githubusercontent.com/r-three/t-few/114deced63ae722a368e06cb08ea956b20c393a6/"
    "data/few_shot/rte/32_shot/0_seed.jsonl"
)


# Every test here may fetch official files, always from local file:// copies.
pytestmark = pytest.mark.usefixtures("local_downloads_only")


@pytest.mark.parametrize("task_name", sorted(TASKS))
def test_official_splits_have_the_paper_shot_counts(mirror, task_name):
    task = get_task(task_name)
    seeds = official_few_shot_seeds(task)
    assert set(DEFAULT_SEEDS) <= set(seeds)
    for seed in seeds:
        rows = load_few_shot(task, seed, mirror)
        assert len(rows) == task.num_shots, seed
        assert len({row["idx"] for row in rows}) == task.num_shots, seed


def test_seed_100_exists_for_three_tasks():
    with_100 = sorted(task.name for task in TASKS.values() if 100 in official_few_shot_seeds(task))
    assert with_100 == ["copa", "rte", "wic"]


def test_packaged_sums_match_the_mirror(mirror):
    table = official_files()["few_shot"]
    assert len(table) == 11 * 5 + 3
    for name, info in table.items():
        path = mirror / "few_shot" / name
        assert sha256_of(path) == info["sha256"], name
        assert path.stat().st_size == info["bytes"], name
        assert sum(1 for line in path.read_text().splitlines() if line.strip()) == info["rows"], name


def copy_few_shot(mirror, tmp_path, name):
    target = tmp_path / "few_shot" / name
    target.parent.mkdir(parents=True)
    shutil.copy(mirror / "few_shot" / name, target)
    return target


def test_changed_mirror_file_fails_checksum(mirror, tmp_path):
    path = copy_few_shot(mirror, tmp_path, "cb/32_shot/1_seed.jsonl")
    path.write_text(path.read_text().replace('"label": 0', '"label": 1', 1))
    with pytest.raises(ChecksumError) as error:
        load_few_shot(get_task("cb"), 1, tmp_path)
    assert str(path) in str(error.value)
    assert "tfew data export" in str(error.value)


def test_unofficial_seed_is_read_with_warning(mirror, tmp_path, caplog):
    source = copy_few_shot(mirror, tmp_path, "rte/32_shot/0_seed.jsonl")
    own = source.with_name("7_seed.jsonl")
    source.rename(own)
    with caplog.at_level(logging.WARNING, logger="tfew.data"):
        rows = load_few_shot(get_task("rte"), 7, tmp_path)
    assert len(rows) == 32
    assert "not an official T-Few few-shot split" in caplog.text


def test_missing_seed_lists_published_seeds(tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        load_few_shot(get_task("rte"), 7, tmp_path)
    message = str(error.value)
    assert "few_shot/rte/32_shot/7_seed.jsonl" in message
    assert "[0, 1, 32, 42, 100, 1024]" in message
    assert "--few-shot sample" in message


def test_wrong_row_count_is_rejected(mirror, tmp_path):
    task = get_task("wsc")
    path = tmp_path / "few_shot" / "wsc/32_shot/9_seed.jsonl"
    path.parent.mkdir(parents=True)
    lines = (mirror / "few_shot" / "wsc/32_shot/0_seed.jsonl").read_text().splitlines()
    path.write_text("\n".join(lines[:31]) + "\n")
    with pytest.raises(RowValidationError) as error:
        load_few_shot(task, 9, tmp_path)
    assert "expected 32 rows" in str(error.value)


def test_download_uses_the_pinned_url(mirror, tmp_path, monkeypatch):
    requested = []

    def fake_download(url, timeout=60):
        requested.append(url)
        return (mirror / "few_shot" / "rte/32_shot/0_seed.jsonl").read_bytes()

    monkeypatch.setattr(tfew.official, "download", fake_download)
    path = fetch_official_few_shot(get_task("rte"), 0, tmp_path)
    assert requested == [PINNED_URL]
    assert path == tmp_path / "few_shot" / "rte/32_shot/0_seed.jsonl"
    assert sha256_of(path) == sha256_of(mirror / "few_shot" / "rte/32_shot/0_seed.jsonl")

    fetch_official_few_shot(get_task("rte"), 0, tmp_path)  # a verified file is not fetched again
    assert len(requested) == 1


def local_repository(mirror, tmp_path):
    """A file:// copy of r-three/t-few's layout whose data/few_shot points at the mirror's files."""
    repository = tmp_path / "t-few"
    (repository / "data").mkdir(parents=True)
    (repository / "data" / "few_shot").symlink_to(mirror / "few_shot")
    return repository.as_uri() + "/"


def test_fetch_from_file_url(mirror, tmp_path):
    base_url = local_repository(mirror, tmp_path)
    task = get_task("anli_r2")
    path = fetch_official_few_shot(task, 42, tmp_path / "out", base_url=base_url)
    assert path.read_bytes() == (mirror / "few_shot" / "anli-r2/50_shot/42_seed.jsonl").read_bytes()


def test_fetch_rejects_a_wrong_checksum(mirror, tmp_path):
    repository = tmp_path / "t-few"
    served = repository / "data" / "few_shot" / "copa/32_shot/0_seed.jsonl"
    served.parent.mkdir(parents=True)
    served.write_bytes((mirror / "few_shot" / "copa/32_shot/0_seed.jsonl").read_bytes() + b"\n")
    with pytest.raises(ChecksumError) as error:
        fetch_official_few_shot(get_task("copa"), 0, tmp_path / "out", base_url=repository.as_uri() + "/")
    assert "copa/32_shot/0_seed.jsonl" in str(error.value)
    assert not (tmp_path / "out" / "few_shot" / "copa/32_shot/0_seed.jsonl").exists()


def test_unreachable_url_names_the_url(tmp_path):
    base_url = (tmp_path / "nowhere").as_uri() + "/"
    with pytest.raises(DataNotFoundError) as error:
        fetch_official_few_shot(get_task("cb"), 0, tmp_path / "out", base_url=base_url)
    assert "data/few_shot/cb/32_shot/0_seed.jsonl" in str(error.value)


def test_without_mirror_official_split_is_cached(mirror, tmp_path, monkeypatch):
    monkeypatch.setattr(tfew.official, "OFFICIAL_BASE_URL", local_repository(mirror, tmp_path))
    monkeypatch.setenv("TFEW_CACHE_DIR", str(tmp_path / "cache"))
    rows = load_few_shot(get_task("winogrande"), 1024, None)
    assert len(rows) == 50
    assert (tmp_path / "cache" / "few_shot" / "winogrande/50_shot/1024_seed.jsonl").is_file()
    assert rows == load_few_shot(get_task("winogrande"), 1024, mirror)


def hand_built_split(size):
    return [{"sentence": f"sentence {i}", "label": i % 2, "idx": i} for i in range(size)]


@pytest.mark.parametrize("seed", DEFAULT_SEEDS)
def test_sampling_follows_tfew_procedure(seed):
    rows = hand_built_split(23)

    # T-Few's procedure on a copy: seed NumPy's global generator, shuffle the list of rows, take the first K.
    expected = list(rows)
    np.random.seed(seed)
    np.random.shuffle(expected)
    expected = expected[:7]

    assert sample_few_shot(rows, seed, 7) == expected
    assert rows == hand_built_split(23)


def test_sampling_is_deterministic_and_leaves_numpy_state_alone():
    rows = hand_built_split(40)
    np.random.seed(123)
    state = np.random.get_state()
    first = sample_few_shot(rows, 42, 10)
    after = np.random.get_state()
    assert first == sample_few_shot(rows, 42, 10)
    assert first != sample_few_shot(rows, 43, 10)
    assert state[0] == after[0]
    assert (state[1] == after[1]).all()
    assert state[2:] == after[2:]


def test_fewer_shots_are_a_prefix_of_more():
    rows = hand_built_split(50)
    assert sample_few_shot(rows, 5, 16) == sample_few_shot(rows, 5, 30)[:16]


def test_sampling_more_shots_than_rows_fails():
    with pytest.raises(RowValidationError) as error:
        sample_few_shot(hand_built_split(5), 0, 6)
    assert "6 shots" in str(error.value)
    assert "5 rows" in str(error.value)


@pytest.mark.parametrize("seed", DEFAULT_SEEDS)
def test_sampling_reproduces_official_story_cloze_splits(mirror, seed):
    # StoryCloze trains on its validation split, which the mirror holds, so the procedure can be checked
    # against the published files: same rows, same order, same added `label` and `idx`.
    task = get_task("story_cloze")
    sampled = load_few_shot(task, seed, mirror, source="sample")
    official = load_few_shot(task, seed, mirror, source="official")
    assert sampled == official


def test_sampling_needs_the_training_split(mirror):
    with pytest.raises(DataNotFoundError) as error:
        load_few_shot(get_task("rte"), 0, mirror, source="sample")
    assert "datasets/aps/super_glue/rte/train.jsonl" in str(error.value)
    assert "tfew data export" in str(error.value)


def test_unknown_source_is_rejected(mirror):
    with pytest.raises(DataNotFoundError) as error:
        load_few_shot(get_task("rte"), 0, mirror, source="random")
    assert "'random'" in str(error.value)
