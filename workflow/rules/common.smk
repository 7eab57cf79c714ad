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
