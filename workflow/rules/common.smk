# Helpers shared by the rule files: the condition grid and the config hash recorded in every result row.

import hashlib
import json


def config_hash():
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


CONFIG_HASH = config_hash()
TASKS = config["tasks"]
SEEDS = config["seeds"]
LOSS_VARIANTS = config["train"]["loss_variants"]


def data_source_args():
    if config["data"]["source"] == "hub":
        return "--hub"
    return f"--mirror {config['data']['mirror']}"


# Where the cost table for the analysis lives; the costs rule writes it.
COSTS_FILE = f"{RESULTS}/costs/table1.csv"


def prediction_files():
    """Every per-example prediction file of this run, across methods; the analysis rules read these."""
    return expand(
        f"{RESULTS}/predictions/t-few/{{task}}/{{loss}}/scratch/seed{{seed}}.csv",
        task=TASKS,
        loss=LOSS_VARIANTS,
        seed=SEEDS,
    )
