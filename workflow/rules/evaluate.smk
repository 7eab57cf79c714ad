# Evaluation stage: rank classification of trained (IA)^3 vectors on every template, one row per
# (example, template), for both initialisations (scratch and pretrained).

rule evaluate_ia3:
    input:
        model=model_ready(BACKBONE),
        data=f"{RESULTS}/data/{{task}}/eval.jsonl",
        vectors=f"{RESULTS}/train/{{task}}/{{loss}}/{{init}}/seed{{seed}}/vectors.safetensors",
    output:
        predictions=f"{RESULTS}/predictions/t-few/{{task}}/{{loss}}/{{init}}/seed{{seed}}.csv",
    params:
        model_dir=lambda wildcards, input: os.path.dirname(input.model),
        batch_size=config["evaluate"]["batch_size"],
    log:
        f"{LOGS}/evaluate/{{task}}/{{loss}}/{{init}}/seed{{seed}}.log",
    message:
        "Evaluate (IA)^3 ({wildcards.init}) on {wildcards.task}, seed {wildcards.seed}, loss {wildcards.loss}"
    conda:
        TFEW_ENV
    threads: threads_for("evaluate")
    resources:
        **resources_for("evaluate"),
    shell:
        "tfew evaluate --model {params.model_dir} --data {input.data} "
        "--vectors {input.vectors} --method t-few --task {wildcards.task} --seed {wildcards.seed} "
        "--loss-variant {wildcards.loss} --init {wildcards.init} --batch-size {params.batch_size} "
        "--threads {threads} --out {output.predictions} > {log} 2>&1"
