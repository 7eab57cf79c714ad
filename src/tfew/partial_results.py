"""Results of finished chunks of a long scoring job, kept on disk so that a killed job resumes where it stopped.

An in-context learning job on T0 can run for many hours (the ensemble scores every example once per
demonstration), longer than some SLURM partitions allow. The job scores its examples in chunks and appends
each finished chunk to `<output>.partial.jsonl`, one JSON line per chunk, after a header line that records the
run's settings. Rerunning the same command reads the finished chunks back and scores only the rest; the file
is deleted once the final output is written. A header with other settings is rejected, so results of
different runs never mix.

JSON keeps every float exactly (Python writes the shortest text that reads back as the same float), so a
resumed run writes the same predictions as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from tfew.errors import TfewError

log = logging.getLogger(__name__)


def partial_path(out_file: Path) -> Path:
    """Return where the finished chunks of the job that writes `out_file` are kept."""
    out_file = Path(out_file)
    return out_file.with_name(out_file.name + ".partial.jsonl")


def model_files_signature(model_dir: Path) -> list[list]:
    """Return name, size and modification time of a model folder's config and weight files.

    Two models with the same name (two tiny models of different seeds, or a re-downloaded checkpoint) thus
    never share partial results, without hashing gigabytes of weights.
    """
    patterns = ("config.json", "*.safetensors", "*.bin")
    files = sorted(path for pattern in patterns for path in Path(model_dir).glob(pattern))
    return [[path.name, path.stat().st_size, path.stat().st_mtime_ns] for path in files]


def describe_differences(saved: dict, current: dict) -> str:
    """Return `name: saved -> current` for each setting that differs, joined by commas; empty when none does."""
    names = sorted(set(saved) | set(current))
    return ", ".join(f"{name}: {saved.get(name)!r} -> {current.get(name)!r}" for name in names
                     if saved.get(name) != current.get(name))


class PartialResults:
    """Finished chunks of one job, keyed by (order, first example position)."""

    def __init__(self, out_file: Path, settings: dict):
        self.path = partial_path(out_file)
        self.settings = json.loads(json.dumps(settings, sort_keys=True, default=str))
        self.chunks: dict[tuple[int, int], list[dict]] = {}

    def load(self) -> None:
        """Read the chunks a previous attempt finished; a file without a complete header counts as absent."""
        if not self.path.is_file():
            return

        lines = self.path.read_text(encoding="utf-8").splitlines()
        header = self._read_header(lines[0] if lines else "")
        if header is None:
            log.warning("%s has no complete header (a kill during its first write); starting from the first "
                        "example", self.path)
            self.path.unlink()
            return
        differences = describe_differences(header.get("settings", {}), self.settings)
        if differences:
            raise TfewError(
                f"{self.path} contains results of a run with other settings ({differences}); delete it to start "
                "this run from the first example"
            )

        complete = lines[:1]
        for number, line in enumerate(lines[1:], start=2):
            try:
                chunk = json.loads(line)
            except json.JSONDecodeError:
                # Only the last line can be cut short, by a kill during its write. It is dropped from the file,
                # so that the chunks appended next follow complete lines, and its chunk is scored again.
                log.warning("%s:%d: incomplete chunk from a killed run; it is scored again", self.path, number)
                self._rewrite(complete)
                break
            self.chunks[(chunk["order"], chunk["start"])] = chunk["results"]
            complete.append(line)
        if self.chunks:
            log.info("resuming from %s: %d chunks already scored", self.path, len(self.chunks))

    def get(self, order: int, start: int) -> list[dict] | None:
        """Return the results of a finished chunk, or None when it still has to be scored."""
        return self.chunks.get((order, start))

    def add(self, order: int, start: int, results: list[dict]) -> None:
        """Append a finished chunk and flush it to disk before scoring the next one.

        The header is written with the first chunk, so a job that fails before it scores anything leaves no file.
        """
        if not self.path.is_file():
            self._start()
        self.chunks[(order, start)] = results
        line = json.dumps({"order": order, "start": start, "results": results})
        self._append(line)

    def remove(self) -> None:
        """Delete the file once the job's output is complete."""
        self.path.unlink(missing_ok=True)

    def _read_header(self, line: str) -> dict | None:
        try:
            header = json.loads(line)
        except json.JSONDecodeError:
            return None
        return header if isinstance(header, dict) and "settings" in header else None

    def _start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"settings": self.settings}) + "\n", encoding="utf-8")

    def _rewrite(self, lines: list[str]) -> None:
        partial = self.path.with_name(self.path.name + ".tmp")
        partial.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        partial.replace(self.path)

    def _append(self, line: str) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
