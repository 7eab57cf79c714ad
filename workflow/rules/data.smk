# Data stage: load each task's rows (mirror or hub), render every template, write tidy JSONL files; and, for
# emulated (IA)^3 pre-training, one multitask file of few-shot rows from tasks this run does not evaluate.

# Hub data needs the network, which SLURM compute nodes often lack: run these jobs where snakemake runs.
if config["data"]["source"] == "hub":

    localrules:
        prepare_task,


if config["data"]["source"] == "hub" and PRETRAINED["enabled"] and PRETRAINED["source"] == "mixture":

    localrules:
        prepare_mixture,


rule prepare_task:
    output:
        eval=f"{RESULTS}/data/{{task}}/eval.jsonl",
        few_shot=expand(f"{RESULTS}/data/{{{{task}}}}/few_shot_seed{{seed}}.jsonl", seed=DATA_SEEDS),
        stats=f"{RESULTS}/data/{{task}}/render_stats.json",
    params:
        source=data_source_args(),
        seeds=" ".join(str(seed) for seed in DATA_SEEDS),
        max_eval=(
            f"--max-eval-examples {config['data']['max_eval_examples']}"
            if config["data"].get("max_eval_examples")
            else ""
        ),
        few_shot=config["data"]["few_shot"],
        templates=config["data"]["templates"],
        out=lambda wildcards, output: os.path.dirname(output.eval),
    log:
        f"{LOGS}/data/{{task}}.log",
    message:
        "Render every template of task {wildcards.task} (evaluation rows and few-shot seeds {params.seeds})"
    conda:
        TFEW_ENV
    threads: threads_for("data")
    resources:
        **resources_for("data"),
    shell:
        "tfew data prepare --task {wildcards.task} --seeds {params.seeds} {params.source} {params.max_eval} "
        "--few-shot {params.few_shot} --templates {params.templates} --out {params.out} > {log} 2>&1"


if PRETRAINED["enabled"] and PRETRAINED["source"] == "mixture":

    rule prepare_mixture:
        output:
            MIXTURE_FILE,
        params:
            source=data_source_args(),
            tasks=" ".join(PRETRAINED["mixture"]["tasks"]),
            seed=PRETRAINED["mixture"]["seed"],
        log:
            f"{LOGS}/pretrained/prepare_mixture.log",
        message:
            "Render the few-shot rows of {params.tasks} into one pre-training mixture"
        conda:
            TFEW_ENV
        threads: threads_for("data")
        resources:
            **resources_for("data"),
        shell:
            "tfew data mixture --tasks {params.tasks} --seed {params.seed} {params.source} "
            "--out {output} > {log} 2>&1"
