# Evaluation stage: rank classification on every template, one row per (example, template).


rule evaluate_ia3:
    input:
        model=rules.tiny_model.output.weights,
        data=f"{RESULTS}/data/{{task}}/eval.jsonl",
        vectors=rules.train_ia3.output.vectors,
    output:
        predictions=f"{RESULTS}/predictions/t-few/{{task}}/{{loss}}/scratch/seed{{seed}}.csv",
    params:
        model_dir=f"{RESULTS}/model",
    log:
        f"{LOGS}/evaluate/{{task}}/{{loss}}/scratch/seed{{seed}}.log",
    message:
        "Evaluate (IA)^3 on {wildcards.task}, seed {wildcards.seed}, loss {wildcards.loss}"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "TFEW_CONFIG_HASH={CONFIG_HASH} tfew evaluate --model {params.model_dir} --data {input.data} "
        "--vectors {input.vectors} --method t-few --task {wildcards.task} --seed {wildcards.seed} "
        "--loss-variant {wildcards.loss} --init scratch --threads {threads} "
        "--out {output.predictions} > {log} 2>&1"
