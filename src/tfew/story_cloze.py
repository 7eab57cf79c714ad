"""StoryCloze 2016 from the ROCStories CSV files, read with the `datasets` packaged `csv` builder.

The hub repository LSDSem/story_cloze holds only a manual-download script, which `datasets` 4 and later
refuse to run, so the rows come from the two CSV files that the ROCStories authors send on request. The
columns are renamed to the schema of that retired script, because the promptsource templates read those names.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tfew.errors import DataNotFoundError, RowValidationError
from tfew.tasks import STORY_CLOZE_FIELDS

log = logging.getLogger(__name__)

# The file names the ROCStories authors distribute (https://cs.rochester.edu/nlp/rocstories/).
CSV_FILES = {
    "validation": "cloze_test_val__spring2016 - cloze_test_ALL_val.csv",
    "test": "cloze_test_test__spring2016 - cloze_test_ALL_test.csv",
}

# CSV column -> column of the retired `story_cloze.py` hub script (config "2016").
CSV_COLUMNS = {
    "InputStoryid": "story_id",
    "InputSentence1": "input_sentence_1",
    "InputSentence2": "input_sentence_2",
    "InputSentence3": "input_sentence_3",
    "InputSentence4": "input_sentence_4",
    "RandomFifthSentenceQuiz1": "sentence_quiz1",
    "RandomFifthSentenceQuiz2": "sentence_quiz2",
    "AnswerRightEnding": "answer_right_ending",
}

# Default folder of the two CSV files, relative to the working directory (resources/ is where downloads go).
DEFAULT_CSV_DIR = Path("resources") / "story_cloze"


def csv_dir() -> Path:
    """Return the folder of the ROCStories CSV files: $TFEW_STORY_CLOZE_DIR, else resources/story_cloze."""
    return Path(os.environ.get("TFEW_STORY_CLOZE_DIR", DEFAULT_CSV_DIR))


def missing_files_message(folder: Path, missing: list[str]) -> str:
    """Return the instructions for a user who lacks the StoryCloze CSV files."""
    names = " and ".join(f'"{name}"' for name in missing)
    return (
        f"story_cloze: {names} not found in {folder}. StoryCloze 2016 cannot be downloaded automatically: "
        f"request it with the form at https://cs.rochester.edu/nlp/rocstories/ (Story Cloze Test, Spring "
        f"2016), put \"{CSV_FILES['validation']}\" and \"{CSV_FILES['test']}\" into {folder} (or set "
        f"TFEW_STORY_CLOZE_DIR to their folder), then run `tfew data import-story-cloze --csv-dir {folder} "
        f"--to MIRROR` to add them to an offline mirror."
    )


def split_csv_path(split: str, folder: Path | None = None) -> Path:
    """Return the CSV file of a StoryCloze split, or raise with the download instructions when it is absent."""
    if split not in CSV_FILES:
        raise DataNotFoundError(f"story_cloze has no split {split!r}; it has {sorted(CSV_FILES)}")
    folder = Path(folder) if folder is not None else csv_dir()
    path = folder / CSV_FILES[split]
    if not path.is_file():
        raise DataNotFoundError(missing_files_message(folder, [CSV_FILES[split]]))
    return path


def read_story_cloze_csv(path: Path) -> list[dict]:
    """Read one ROCStories Story Cloze CSV with the `csv` builder and return rows in the hub script's schema."""
    import datasets

    # na_filter=False keeps every sentence as written: pandas would turn a sentence such as "NA" into NaN.
    dataset = datasets.load_dataset("csv", data_files={"rows": str(path)}, split="rows", na_filter=False)
    missing = [column for column in CSV_COLUMNS if column not in dataset.column_names]
    if missing:
        raise RowValidationError(
            f"{path}: missing column(s) {missing}; a Story Cloze Test CSV has the header "
            f"{','.join(CSV_COLUMNS)}"
        )
    dataset = dataset.select_columns(list(CSV_COLUMNS)).rename_columns(CSV_COLUMNS)
    rows = [dict(row) for row in dataset]
    for line_number, row in enumerate(rows, start=2):
        _check_row(path, line_number, row)
    log.info("read %d StoryCloze rows from %s", len(rows), path)
    return rows


def _check_row(path: Path, line_number: int, row: dict) -> None:
    # The header is line 1; stories hold no line breaks, so row i sits on line i + 1.
    ending = row["answer_right_ending"]
    if isinstance(ending, str) and ending.strip().isdigit():
        ending = int(ending)
        row["answer_right_ending"] = ending
    if ending not in (1, 2):
        raise RowValidationError(
            f"{path}:{line_number}: column AnswerRightEnding is {ending!r}, expected 1 or 2"
        )
    for field in STORY_CLOZE_FIELDS:
        if field != "answer_right_ending" and not isinstance(row[field], str):
            raise RowValidationError(f"{path}:{line_number}: field {field!r} is {row[field]!r}, expected text")
