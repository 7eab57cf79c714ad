"""The `tfew data` subcommands: prepare, list, export and import-story-cloze.

    tfew data list
    tfew data prepare --task rte --seeds 0 1 32 42 1024 --mirror ../shared/data --out results/demo/data/rte
    tfew data export --tasks rte cb copa --to /shared/tfew-mirror
    tfew data import-story-cloze --csv-dir resources/story_cloze --to /shared/tfew-mirror
"""

from __future__ import annotations

from pathlib import Path

from tfew.errors import TfewError, require_positive


def add_commands(commands) -> None:
    """Register the `data` command group on the top-level parser."""
    data = commands.add_parser("data", help="task rows, templates and few-shot splits")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    _add_prepare(data_commands)
    _add_list(data_commands)
    _add_export(data_commands)
    _add_import_story_cloze(data_commands)


def _add_prepare(data_commands) -> None:
    from tfew.data import FEW_SHOT_SOURCES, seed_value
    from tfew.prompts import TEMPLATE_SELECTIONS

    prepare = data_commands.add_parser("prepare", help="render one task's evaluation and few-shot splits")
    prepare.add_argument("--task", required=True, help="task name from `tfew data list`")
    prepare.add_argument("--seeds", type=seed_value, nargs="+", required=True, help="few-shot seeds")
    source = prepare.add_mutually_exclusive_group(required=True)
    source.add_argument("--mirror", type=Path, help="offline mirror directory")
    source.add_argument("--hub", action="store_true", help="load from the Hugging Face hub")
    prepare.add_argument("--max-eval-examples", type=int, help="keep only the first N evaluation rows")
    prepare.add_argument(
        "--few-shot", choices=FEW_SHOT_SOURCES, default="official",
        help="official: T-Few's published splits (default); sample: seeded sampling from the training split",
    )
    prepare.add_argument("--shots", type=int, help="few-shot examples per split (default: the task's, as in the paper)")
    prepare.add_argument(
        "--templates", choices=TEMPLATE_SELECTIONS, default="paper",
        help="paper: original-task templates as the paper uses them (COPA: first 8); original: all of them",
    )
    prepare.add_argument("--hub-revision", help="hub commit to load instead of the task's pinned revision")
    prepare.add_argument("--out", type=Path, required=True, help="output folder for the task")
    prepare.set_defaults(handler=_run_prepare)


def _run_prepare(args) -> None:
    from tfew.prepare import prepare_task

    require_positive(args, "max_eval_examples", "shots")
    repeated = sorted({seed for seed in args.seeds if args.seeds.count(seed) > 1})
    if repeated:
        raise TfewError(f"--seeds lists {repeated} more than once; give each few-shot seed once")
    prepare_task(
        args.task, args.seeds, args.out, None if args.hub else args.mirror, args.max_eval_examples,
        few_shot_source=args.few_shot, num_shots=args.shots, templates=args.templates,
        hub_revision=args.hub_revision,
    )


def _add_list(data_commands) -> None:
    listing = data_commands.add_parser("list", help="print the task registry")
    listing.set_defaults(handler=_run_list)


def registry_table() -> list[dict]:
    """Return one row per task: name, hub path, revision, splits, shots and templates used (of all original)."""
    from tfew.prompts import original_task_templates, select_templates
    from tfew.tasks import TASKS

    table = []
    for task in TASKS.values():
        table.append(
            {
                "task": task.name,
                "hub": task.hub_path + (" (local CSV)" if task.manual_download else ""),
                "revision": "-" if task.manual_download else (task.hub_revision or "main")[:12],
                "train split": task.train_split,
                "eval split": task.eval_split,
                "shots": str(task.num_shots),
                "templates": f"{len(select_templates(task))} of {len(original_task_templates(task))}",
            }
        )
    return table


def _run_list(args) -> None:
    table = registry_table()
    widths = {column: max(len(column), *(len(row[column]) for row in table)) for column in table[0]}
    print("  ".join(column.ljust(width) for column, width in widths.items()).rstrip())
    for row in table:
        print("  ".join(row[column].ljust(width) for column, width in widths.items()).rstrip())


def _add_export(data_commands) -> None:
    from tfew.export import DEFAULT_PARTS, EXPORT_PARTS
    from tfew.tasks import TASKS

    export = data_commands.add_parser(
        "export", help="write an offline mirror from the hub (run where the network is reachable)"
    )
    export.add_argument("--tasks", nargs="+", required=True, choices=sorted(TASKS), metavar="TASK",
                        help="tasks to export (names from `tfew data list`)")
    export.add_argument("--to", type=Path, required=True, help="mirror directory to write (created if absent)")
    export.add_argument("--parts", nargs="+", choices=EXPORT_PARTS, default=list(DEFAULT_PARTS),
                        help="rows: training and evaluation splits; few_shot: T-Few's official splits; "
                             "checkpoints: T-Few's pre-trained (IA)^3 vectors for T0-3B (default: rows few_shot)")
    export.add_argument("--revision", action="append", metavar="TASK=SHA",
                        help="load TASK at this hub commit instead of its pinned revision (repeatable)")
    export.add_argument("--story-cloze-dir", type=Path,
                        help="folder with the two ROCStories Story Cloze CSV files (default: "
                             "$TFEW_STORY_CLOZE_DIR or resources/story_cloze)")
    export.set_defaults(handler=_run_export)


def _run_export(args) -> None:
    from tfew.export import export_mirror, parse_revisions

    record = export_mirror(args.tasks, args.to, tuple(args.parts), parse_revisions(args.revision),
                           args.story_cloze_dir)
    print(f"wrote {len(record['files'])} files into {args.to} (listed in {args.to / 'tfew_export.json'})")


def _add_import_story_cloze(data_commands) -> None:
    story = data_commands.add_parser(
        "import-story-cloze", help="add StoryCloze 2016 to a mirror from the ROCStories CSV files"
    )
    source = story.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv-dir", type=Path, help="folder holding both CSV files under their distributed names")
    source.add_argument("--validation", type=Path, help="the validation CSV (use with --test)")
    story.add_argument("--test", type=Path, help="the test CSV (use with --validation)")
    story.add_argument("--to", type=Path, required=True, help="mirror directory to write")
    story.set_defaults(handler=_run_import_story_cloze)


def _run_import_story_cloze(args) -> None:
    from tfew.export import import_story_cloze, import_story_cloze_dir

    if args.csv_dir is not None:
        import_story_cloze_dir(args.csv_dir, args.to)
    elif args.test is None:
        raise TfewError("--validation needs --test: give both Story Cloze CSV files, or --csv-dir")
    else:
        import_story_cloze(args.validation, args.test, args.to)
    print(f"wrote StoryCloze validation and test splits into {args.to}")
