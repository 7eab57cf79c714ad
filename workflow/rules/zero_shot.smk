# Zero-shot baseline: the backbone (T0) scored by rank classification on every template without (IA)^3
# vectors. Seed, loss variant and initialisation do not apply, so the rows carry -1, none and none.


rule evaluate_zero_shot:
    input:
        model=model_ready(BACKBONE),
        data=f"{RESULTS}/data/{{task}}/eval.jsonl",
    output:
        predictions=f"{RESULTS}/predictions/t0-zero-shot/{{task}}.csv",
    params:
        model_dir=lambda wildcards, input: os.path.dirname(input.model),
        batch_size=config["evaluate"]["batch_size"],
    log:
        f"{LOGS}/zero_shot/{{task}}.log",
    message:
        "Evaluate {BACKBONE} zero-shot on {wildcards.task}"
    conda:
        TFEW_ENV
    threads: threads_for("evaluate")
    resources:
        **resources_for("evaluate"),
    shell:
        "tfew evaluate --model {params.model_dir} --data {input.data} "
        "--method t0-zero-shot --task {wildcards.task} --seed -1 --loss-variant none --init none "
        "--batch-size {params.batch_size} --threads {threads} --out {output.predictions} > {log} 2>&1"
