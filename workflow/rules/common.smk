# Helpers shared by every stage file: config validation and cross-key checks, the run's grid, model folders,
# per-stage resources, the config hash recorded in every result row, and the list of every prediction file.

import hashlib
import json
import os
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate


def config_error(key, message):
    """Return the error for an invalid config value; the message starts with the key's dotted path."""
    return WorkflowError(f"invalid config key '{key}': {message}")


def describe_validation_error(error):
    """Turn snakemake's schema validation error into one line that names the offending key."""
    import jsonschema

    # snakemake raises its error while handling jsonschema's, so the original is the context.
    cause = error.__context__
    if not isinstance(cause, jsonschema.ValidationError):
        return error
    path = ""
    for part in cause.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    if cause.validator == "additionalProperties":
        unknown = sorted(set(cause.instance) - set(cause.schema.get("properties", {})))
        where = f" under '{path}'" if path else " at the top level"
        allowed = ", ".join(sorted(cause.schema.get("properties", {})))
        names = ", ".join(f"'{path}.{key}'" if path else f"'{key}'" for key in unknown)
        return WorkflowError(f"unknown config key {names}{where}; allowed keys: {allowed}")
    return config_error(path or "(top level)", cause.message + validation_hint(cause))


def validation_hint(cause):
    """Return a hint for two common mistakes that the schema's own message does not explain, else ''."""
    expects_number = cause.validator == "type" and cause.validator_value == "number"
    if expects_number and isinstance(cause.instance, str) and looks_like_number(cause.instance):
        # YAML 1.1 reads a float without a dot, such as 3e-3, as a string.
        return f"; YAML reads {cause.instance} as text, so write it with a dot (for example 0.003 or 3.0e-3)"
    if cause.validator == "required" and not list(cause.absolute_path):
        return ("; list the base config first and your override file after it, for example "
                "--configfile workflow/config/demo.yaml mine.yaml")
    return ""


def looks_like_number(text):
    """Return whether a string parses as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def validate_config():
    """Validate the config against the JSON Schema (filling in its defaults), then check cross-key rules."""
    try:
        validate(config, "../config/schema.yaml")
    except WorkflowError as error:
        raise describe_validation_error(error) from None
    check_config()


def check_config():
    """Check what the JSON Schema cannot express: references between keys and task sets."""
    models = config["models"]
    if config["backbone"] not in models:
        raise config_error("backbone", f"'{config['backbone']}' is not a key of 'models' ({', '.join(models)})")

    if models[config["backbone"]]["kind"] == "tiny-causal":
        raise config_error(
            "backbone", f"'{config['backbone']}' is a decoder-only model; T-Few trains an encoder-decoder (T0, tiny)"
        )

    if config["data"]["source"] == "mirror" and not Path(config["data"]["mirror"]).is_dir():
        raise config_error(
            "data.mirror",
            f"directory '{config['data']['mirror']}' not found (relative paths start at the working directory "
            f"{Path.cwd()}); point it at the offline mirror or set data.source to hub",
        )

    for key in config["icl"]["models"]:
        if key != "backbone" and key not in models:
            raise config_error("icl.models", f"'{key}' is not a key of 'models' ({', '.join(models)})")

    pretrained = config["pretrained"]
    if pretrained["enabled"] and pretrained["source"] == "official":
        backbone = models[config["backbone"]]
        vectors = backbone.get("official_vectors", {})
        if backbone["kind"] != "hub" or not (vectors.get("url") or vectors.get("path")):
            raise config_error(
                "pretrained.source",
                f"'official' needs released vectors, but models.{config['backbone']} has no official_vectors "
                f"url or path; use source 'mixture' (multitask pre-training) or set enabled to false",
            )
        if not backbone.get("ia3_base_config"):
            raise config_error(f"models.{config['backbone']}.ia3_base_config", "required to convert official vectors")
    if pretrained["enabled"] and pretrained["source"] == "mixture":
        if "mixture" not in pretrained:
            raise config_error("pretrained.mixture", "required when pretrained.source is 'mixture'")
        shared = sorted(set(pretrained["mixture"]["tasks"]) & set(config["tasks"]))
        if shared:
            raise config_error(
                "pretrained.mixture.tasks",
                f"{shared} are also evaluated in this run; pre-training data must come from other tasks, as the "
                f"released vectors were trained on tasks disjoint from the evaluated ones",
            )


def check_data_inputs():
    """Check, before any job runs, that each task's evaluation split and official few-shot seeds can exist."""
    from tfew.data import mirror_split_path
    from tfew.errors import DataNotFoundError
    from tfew.official import official_few_shot_seeds
    from tfew.story_cloze import split_csv_path
    from tfew.tasks import get_task

    data = config["data"]
    missing_splits = []
    for name in config["tasks"]:
        task = get_task(name)
        if data["few_shot"] == "official":
            check_official_seeds(task, official_few_shot_seeds(task))
        if data["source"] == "mirror":
            path = mirror_split_path(Path(data["mirror"]), task, task.eval_split)
            if not path.is_file():
                missing_splits.append(f"{name} ({path})")
        elif task.manual_download:
            # StoryCloze is not on the hub: its CSV files must be imported by hand before its job runs.
            try:
                split_csv_path(task.eval_split)
            except DataNotFoundError as error:
                logger.warning(str(error))

    if missing_splits:
        raise config_error(
            "tasks",
            f"the mirror {data['mirror']} has no evaluation split for {', '.join(missing_splits)}; remove these "
            "tasks, add the splits with `tfew data export`, or set data.source to hub",
        )


def check_official_seeds(task, published):
    """Raise when the run asks for an official few-shot split that T-Few never published."""
    for key, seeds in (("seeds", config["seeds"]), ("icl.seeds", config["icl"].get("seeds", []))):
        unpublished = [seed for seed in seeds if seed not in published]
        if unpublished:
            raise config_error(
                key,
                f"T-Few publishes no few-shot split of {task.name} for seeds {unpublished} (it has {published}); "
                "use those seeds, or set data.few_shot to sample to draw splits by T-Few's procedure",
            )


validate_config()
check_data_inputs()

RUN = config["run_name"]
RESULTS = f"results/{RUN}"
LOGS = f"logs/{RUN}"
FIGURES = f"paper_figures/{RUN}"

TASKS = config["tasks"]
SEEDS = config["seeds"]
LOSS_VARIANTS = config["train"]["loss_variants"]
MODELS = config["models"]
BACKBONE = config["backbone"]
BACKBONE_DESCRIPTION = MODELS[BACKBONE]["description"]
PRETRAINED = config["pretrained"]
ICL = config["icl"]
ICL_MODELS = [BACKBONE if key == "backbone" else key for key in ICL["models"]]
ICL_SEEDS = ICL.get("seeds", SEEDS)
# Few-shot splits to render: the training seeds plus any extra seeds only ICL uses.
DATA_SEEDS = SEEDS + [seed for seed in ICL_SEEDS if seed not in SEEDS]


def config_hash():
    """Hash the settings that can change results: every key except the scheduler `resources`."""
    settings = {key: value for key, value in config.items() if key != "resources"}
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


CONFIG_HASH = config_hash()

# Every `tfew` job reads the hash from its environment and writes it into its result rows. It is passed as
# an environment variable and not as a param, because a changed param reruns a job: one more seed in the
# config would then rerun every finished job.
os.environ.update({"TFEW_CONFIG_HASH": CONFIG_HASH})

# The software environment of every rule for `snakemake --use-conda` (the venv from `make venv` is the
# tested route); the path is relative to the rule files in workflow/rules/.
TFEW_ENV = "../envs/tfew.yaml"


def one_of(values):
    """Return a wildcard constraint that matches exactly one of `values`."""
    return "|".join(re.escape(str(value)) for value in values)


def data_source_args():
    if config["data"]["source"] == "hub":
        return "--hub"
    return f"--mirror {config['data']['mirror']}"


TINY_MODELS = [key for key, model in MODELS.items() if model["kind"] == "tiny"]
TINY_CAUSAL_MODELS = [key for key, model in MODELS.items() if model["kind"] == "tiny-causal"]
HUB_MODELS = [key for key, model in MODELS.items() if model["kind"] == "hub"]


def model_dir(key):
    """Folder of a model: tiny models are built per run, hub downloads are shared by all runs in resources/."""
    if MODELS[key]["kind"] == "hub":
        return f"resources/models/{key}"
    return f"{RESULTS}/models/{key}"


def model_ready(key):
    """The file that marks a model folder as complete; it is written last."""
    return f"{model_dir(key)}/tfew_model.json"


def tokenizer_texts(wildcards):
    """Rendered text of every task the run touches, so the tiny tokenizer covers all of it."""
    texts = expand(f"{RESULTS}/data/{{task}}/eval.jsonl", task=TASKS)
    texts += expand(f"{RESULTS}/data/{{task}}/few_shot_seed{{seed}}.jsonl", task=TASKS, seed=DATA_SEEDS)
    if PRETRAINED["enabled"] and PRETRAINED["source"] == "mixture":
        texts.append(MIXTURE_FILE)
    return texts


# Scheduler requests per stage; a stage without its own entry in the config uses `default`.
RESOURCE_DEFAULTS = {"mem_mb": 2000, "runtime": 30, "gpu": 0, "threads": 1}


def stage_settings(stage):
    settings = dict(RESOURCE_DEFAULTS)
    settings.update(config["resources"].get("default", {}))
    settings.update(config["resources"].get(stage, {}))
    return settings


def resources_for(stage):
    """Return the `resources` of a stage's rules: mem_mb, runtime in minutes, gpu (+ gpu_model when set)."""
    return {key: value for key, value in stage_settings(stage).items() if key != "threads"}


def threads_for(stage):
    return stage_settings(stage)["threads"]


TRAIN = config["train"]
# Options shared by every training job of the grid.
TRAIN_OPTIONS = (
    f"--steps {TRAIN['steps']} --batch-size {TRAIN['batch_size']} --grad-accumulation {TRAIN['grad_accumulation']} "
    f"--lr {TRAIN['lr']} --checkpoint-every {TRAIN['checkpoint_every']}"
)

ICL_OPTIONS = f"--orders {ICL['orders']}" + (f" --max-examples {ICL['max_examples']}" if ICL.get("max_examples") else "")

# The multitask few-shot file that emulated pre-training (pretrained.source: mixture) trains on.
MIXTURE_FILE = f"{RESULTS}/pretrained/mixture_seed{PRETRAINED.get('mixture', {}).get('seed', 0)}.jsonl"

# Where the pre-trained (IA)^3 vectors that `init: pretrained` runs start from are written.
PRETRAINED_VECTORS = f"{RESULTS}/pretrained/{PRETRAINED['source']}/vectors.safetensors"

# Where the cost table for the analysis lives; the costs rule writes it.
COSTS_FILE = f"{RESULTS}/costs/table1.csv"
# The cost table the report reads: COSTS_FILE when the costs stage runs (the report says so when it does not).
REPORT_COSTS = [COSTS_FILE] if config["costs"]["enabled"] else []
# Costs measured on this run's own models: the backbone, then each ICL model.
RUN_COSTS_FILE = f"{RESULTS}/costs/run_models.csv"
COST_MODELS = list(dict.fromkeys([BACKBONE] + (ICL_MODELS if ICL["enabled"] else [])))


def cost_files():
    """Return the paper's Table 1 costs (COSTS_FILE) and the costs measured on this run's models, when enabled."""
    if not config["costs"]["enabled"]:
        return []
    return [COSTS_FILE, RUN_COSTS_FILE]


def tfew_prediction_files():
    """T-Few predictions: from scratch for every loss variant, from pre-trained vectors when enabled."""
    files = expand(
        f"{RESULTS}/predictions/t-few/{{task}}/{{loss}}/scratch/seed{{seed}}.csv",
        task=TASKS,
        loss=LOSS_VARIANTS,
        seed=SEEDS,
    )
    if PRETRAINED["enabled"]:
        files += expand(
            f"{RESULTS}/predictions/t-few/{{task}}/{{loss}}/pretrained/seed{{seed}}.csv",
            task=TASKS,
            loss=PRETRAINED["loss_variants"],
            seed=SEEDS,
        )
    return files


def zero_shot_prediction_files():
    if not config["zero_shot"]["enabled"]:
        return []
    return expand(f"{RESULTS}/predictions/t0-zero-shot/{{task}}.csv", task=TASKS)


def icl_prediction_files():
    if not ICL["enabled"]:
        return []
    return expand(
        f"{RESULTS}/predictions/icl-{{mode}}/{{model}}/{{task}}/seed{{seed}}.csv",
        mode=ICL["modes"],
        model=ICL_MODELS,
        task=TASKS,
        seed=ICL_SEEDS,
    )


def prediction_files():
    """Every per-example prediction file of this run, across methods; the analysis rules read these."""
    return tfew_prediction_files() + zero_shot_prediction_files() + icl_prediction_files()
