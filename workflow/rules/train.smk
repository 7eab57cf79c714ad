# Training stage: (IA)^3 with the T-Few recipe over tasks x seeds x loss variants.


rule train_ia3:
    input:
        model=rules.tiny_model.output.weights,
        train=f"{RESULTS}/data/{{task}}/few_shot_seed{{seed}}.jsonl",
    output:
        vectors=f"{RESULTS}/train/{{task}}/{{loss}}/scratch/seed{{seed}}/vectors.safetensors",
    params:
        model_dir=f"{RESULTS}/model",
        out=f"{RESULTS}/train/{{task}}/{{loss}}/scratch/seed{{seed}}",
        steps=config["train"]["steps"],
        batch_size=config["train"]["batch_size"],
    log:
        f"{LOGS}/train/{{task}}/{{loss}}/scratch/seed{{seed}}.log",
    message:
        "Train (IA)^3 on {wildcards.task}, seed {wildcards.seed}, loss {wildcards.loss}"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "TFEW_CONFIG_HASH={CONFIG_HASH} tfew train --model {params.model_dir} --train {input.train} "
        "--task {wildcards.task} --seed {wildcards.seed} --loss {wildcards.loss} "
        "--steps {params.steps} --batch-size {params.batch_size} --threads {threads} "
        "--out {params.out} > {log} 2>&1"
