# Data stage: load each task's rows (mirror or hub), render every template, write tidy JSONL files.


rule prepare_task:
    output:
        eval=f"{RESULTS}/data/{{task}}/eval.jsonl",
        few_shot=expand(f"{RESULTS}/data/{{{{task}}}}/few_shot_seed{{seed}}.jsonl", seed=SEEDS),
        stats=f"{RESULTS}/data/{{task}}/render_stats.json",
    params:
        source=data_source_args(),
        seeds=" ".join(str(seed) for seed in SEEDS),
        max_eval=(
            f"--max-eval-examples {config['data']['max_eval_examples']}"
            if config["data"].get("max_eval_examples")
            else ""
        ),
        out=f"{RESULTS}/data/{{task}}",
    log:
        f"{LOGS}/data/{{task}}.log",
    message:
        "Render templates for task {wildcards.task}"
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "tfew data prepare --task {wildcards.task} --seeds {params.seeds} {params.source} "
        "{params.max_eval} --out {params.out} > {log} 2>&1"
