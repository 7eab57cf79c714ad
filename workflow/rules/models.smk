# Model stage: build the tiny random T5 (demo) from the rendered task text.


rule tiny_model:
    input:
        texts=expand(f"{RESULTS}/data/{{task}}/few_shot_seed{{seed}}.jsonl", task=TASKS, seed=SEEDS)
        + expand(f"{RESULTS}/data/{{task}}/eval.jsonl", task=TASKS),
    output:
        config=f"{RESULTS}/model/config.json",
        weights=f"{RESULTS}/model/model.safetensors",
    params:
        out=f"{RESULTS}/model",
        seed=config["model"]["seed"],
        vocab_size=config["model"]["vocab_size"],
    log:
        f"{LOGS}/model/tiny_model.log",
    message:
        "Build the tiny T5 with T0's architecture and train its tokenizer"
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "tfew model tiny --texts {input.texts} --seed {params.seed} --vocab-size {params.vocab_size} "
        "--out {params.out} > {log} 2>&1"
