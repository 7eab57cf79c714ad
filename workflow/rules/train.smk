# Training stage: (IA)^3 with the T-Few recipe over tasks x seeds x loss variants, from scratch (vectors at
# ones) or from pre-trained vectors; plus the jobs that produce those pre-trained vectors.
#
# Resuming: `tfew train` keeps checkpoint.pt beside its outputs and resumes from it when rerun with the same
# recipe. The checkpoint is not a declared output, so snakemake leaves it in place when it deletes the outputs
# of a failed or interrupted job, and the rerun continues from the last saved step.


rule train_ia3:
    input:
        model=model_ready(BACKBONE),
        train=f"{RESULTS}/data/{{task}}/few_shot_seed{{seed}}.jsonl",
    output:
        vectors=f"{RESULTS}/train/{{task}}/{{loss}}/scratch/seed{{seed}}/vectors.safetensors",
        metadata=f"{RESULTS}/train/{{task}}/{{loss}}/scratch/seed{{seed}}/vectors.json",
        history=f"{RESULTS}/train/{{task}}/{{loss}}/scratch/seed{{seed}}/train_log.csv",
    params:
        model_dir=lambda wildcards, input: os.path.dirname(input.model),
        out=lambda wildcards, output: os.path.dirname(output.vectors),
        options=TRAIN_OPTIONS,
    log:
        f"{LOGS}/train/{{task}}/{{loss}}/scratch/seed{{seed}}.log",
    message:
        "Train (IA)^3 from scratch on {wildcards.task}, seed {wildcards.seed}, loss {wildcards.loss}"
    conda:
        TFEW_ENV
    threads: threads_for("train")
    resources:
        **resources_for("train"),
    shell:
        "tfew train --model {params.model_dir} --train {input.train} --task {wildcards.task} "
        "--seed {wildcards.seed} --loss {wildcards.loss} {params.options} --threads {threads} "
        "--out {params.out} > {log} 2>&1"


rule train_ia3_pretrained:
    input:
        model=model_ready(BACKBONE),
        train=f"{RESULTS}/data/{{task}}/few_shot_seed{{seed}}.jsonl",
        init=PRETRAINED_VECTORS,
    output:
        vectors=f"{RESULTS}/train/{{task}}/{{loss}}/pretrained/seed{{seed}}/vectors.safetensors",
        metadata=f"{RESULTS}/train/{{task}}/{{loss}}/pretrained/seed{{seed}}/vectors.json",
        history=f"{RESULTS}/train/{{task}}/{{loss}}/pretrained/seed{{seed}}/train_log.csv",
    params:
        model_dir=lambda wildcards, input: os.path.dirname(input.model),
        out=lambda wildcards, output: os.path.dirname(output.vectors),
        options=TRAIN_OPTIONS,
    log:
        f"{LOGS}/train/{{task}}/{{loss}}/pretrained/seed{{seed}}.log",
    message:
        "Train (IA)^3 from pre-trained vectors on {wildcards.task}, seed {wildcards.seed}, loss {wildcards.loss}"
    conda:
        TFEW_ENV
    threads: threads_for("train")
    resources:
        **resources_for("train"),
    shell:
        "tfew train --model {params.model_dir} --train {input.train} --task {wildcards.task} "
        "--seed {wildcards.seed} --loss {wildcards.loss} {params.options} --init-vectors {input.init} "
        "--threads {threads} --out {params.out} > {log} 2>&1"


if PRETRAINED["enabled"] and PRETRAINED["source"] == "official":
    OFFICIAL_VECTORS = MODELS[BACKBONE]["official_vectors"]
    OFFICIAL_CHECKPOINT = OFFICIAL_VECTORS.get("path") or f"resources/checkpoints/{BACKBONE}/ia3_finish.pt"

    if not OFFICIAL_VECTORS.get("path"):

        localrules:
            fetch_official_vectors,

        rule fetch_official_vectors:
            output:
                OFFICIAL_CHECKPOINT,
            params:
                url=OFFICIAL_VECTORS["url"],
                sha256=f"--sha256 {OFFICIAL_VECTORS['sha256']}" if OFFICIAL_VECTORS.get("sha256") else "",
                backbone=BACKBONE,
            log:
                f"{LOGS}/pretrained/fetch_official_vectors.log",
            message:
                "Download the released pre-trained (IA)^3 vectors of {params.backbone}"
            conda:
                TFEW_ENV
            threads: threads_for("download")
            resources:
                **resources_for("download"),
            shell:
                "tfew fetch --url {params.url} {params.sha256} --out {output} > {log} 2>&1"

    rule convert_official_vectors:
        input:
            OFFICIAL_CHECKPOINT,
        output:
            vectors=PRETRAINED_VECTORS,
        params:
            base=MODELS[BACKBONE]["ia3_base_config"],
            revision=MODELS[BACKBONE]["revision"],
        log:
            f"{LOGS}/pretrained/convert_official_vectors.log",
        message:
            "Convert the released (IA)^3 vectors to the tfew format ({params.base})"
        conda:
            TFEW_ENV
        threads: threads_for("default")
        resources:
            **resources_for("default"),
        shell:
            "tfew ia3 convert {input} {output.vectors} --from t-few --to tfew --base-config {params.base} "
            "--revision {params.revision} > {log} 2>&1"


if PRETRAINED["enabled"] and PRETRAINED["source"] == "mixture":
    MIXTURE = PRETRAINED["mixture"]

    # Named `pretrain_*`, not `train_*`: it is one multitask job, not a cell of the task x seed grid.
    rule pretrain_ia3_mixture:
        input:
            model=model_ready(BACKBONE),
            train=MIXTURE_FILE,
        output:
            vectors=PRETRAINED_VECTORS,
            metadata=PRETRAINED_VECTORS.replace(".safetensors", ".json"),
            history=f"{RESULTS}/pretrained/mixture/train_log.csv",
        params:
            model_dir=lambda wildcards, input: os.path.dirname(input.model),
            out=lambda wildcards, output: os.path.dirname(output.vectors),
            options=(
                f"--seed {MIXTURE['seed']} --loss {MIXTURE['loss']} --steps {MIXTURE['steps']} "
                f"--batch-size {MIXTURE['batch_size']} --lr {MIXTURE['lr']} "
                f"--checkpoint-every {TRAIN['checkpoint_every']}"
            ),
            tasks=", ".join(MIXTURE["tasks"]),
        log:
            f"{LOGS}/pretrained/pretrain_ia3_mixture.log",
        message:
            "Pre-train (IA)^3 on the few-shot mixture of {params.tasks}"
        conda:
            TFEW_ENV
        threads: threads_for("pretrain")
        resources:
            **resources_for("pretrain"),
        shell:
            "tfew train --model {params.model_dir} --train {input.train} --task mixture {params.options} "
            "--threads {threads} --out {params.out} > {log} 2>&1"
