# Costs: inference and training FLOPs per example and disk space per task. COSTS_FILE (read by the analysis)
# applies the formula of Liu et al. 2022, Section 4.2, to the paper's models; the second table measures this
# run's models on its own data.

if config["costs"]["enabled"]:

    rule costs_table1:
        output:
            COSTS_FILE,
        log:
            f"{LOGS}/costs/table1.log",
        message:
            "Compute the FLOPs and disk space of Table 1 by the paper's cost formula"
        conda:
            TFEW_ENV
        threads: threads_for("costs")
        resources:
            **resources_for("costs"),
        shell:
            "tfew costs --preset paper-table1 --out {output} > {log} 2>&1"

    # NOTE: token counts come from the first task and seed of the run only; `tfew costs` reads one
    # evaluation file and one few-shot file, where the paper takes medians over all its datasets.
    rule costs_run_models:
        input:
            models=[model_ready(key) for key in COST_MODELS],
            data=f"{RESULTS}/data/{TASKS[0]}/eval.jsonl",
            train=f"{RESULTS}/data/{TASKS[0]}/few_shot_seed{SEEDS[0]}.jsonl",
            icl=icl_prediction_files(),
        output:
            RUN_COSTS_FILE,
        params:
            model_dirs=lambda wildcards, input: " ".join(os.path.dirname(path) for path in input.models),
            icl=lambda wildcards, input: ("--icl-predictions " + " ".join(input.icl)) if input.icl else "",
            steps=config["train"]["steps"],
            batch_size=config["train"]["batch_size"],
        log:
            f"{LOGS}/costs/run_models.log",
        message:
            "Measure FLOPs and disk space of this run's models on {TASKS[0]}"
        conda:
            TFEW_ENV
        threads: threads_for("costs")
        resources:
            **resources_for("costs"),
        shell:
            "tfew costs --model {params.model_dirs} --data {input.data} --train {input.train} {params.icl} "
            "--steps {params.steps} --batch-size {params.batch_size} --out {output} > {log} 2>&1"
