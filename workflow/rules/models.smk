# Model stage: build a tiny random T5 (or a tiny decoder-only stand-in for GPT-3 ICL) from the run's task
# text (demo), or download a hub model at its pinned commit (paper). Either way the folder is complete once
# tfew_model.json, written last, exists.


# Downloads need the network, which SLURM compute nodes often lack: run them where snakemake runs.
localrules:
    download_model,


rule tiny_model:
    input:
        texts=tokenizer_texts,
    output:
        ready=f"{RESULTS}/models/{{model}}/tfew_model.json",
        config=f"{RESULTS}/models/{{model}}/config.json",
        weights=f"{RESULTS}/models/{{model}}/model.safetensors",
    wildcard_constraints:
        model=one_of(TINY_MODELS) if TINY_MODELS else "(?!)",
    params:
        out=lambda wildcards, output: os.path.dirname(output.ready),
        seed=lambda wildcards: MODELS[wildcards.model]["seed"],
        vocab_size=lambda wildcards: MODELS[wildcards.model]["vocab_size"],
        d_model=lambda wildcards: MODELS[wildcards.model]["d_model"],
        layers=lambda wildcards: MODELS[wildcards.model]["layers"],
    log:
        f"{LOGS}/models/{{model}}.log",
    message:
        "Build the tiny T5 {wildcards.model} with T0's architecture and train its tokenizer"
    conda:
        TFEW_ENV
    threads: threads_for("model")
    resources:
        **resources_for("model"),
    shell:
        "tfew model tiny --texts {input.texts} --seed {params.seed} --vocab-size {params.vocab_size} "
        "--d-model {params.d_model} --layers {params.layers} --out {params.out} > {log} 2>&1"


rule tiny_causal_model:
    input:
        texts=tokenizer_texts,
    output:
        ready=f"{RESULTS}/models/{{model}}/tfew_model.json",
        config=f"{RESULTS}/models/{{model}}/config.json",
    wildcard_constraints:
        model=one_of(TINY_CAUSAL_MODELS) if TINY_CAUSAL_MODELS else "(?!)",
    params:
        out=lambda wildcards, output: os.path.dirname(output.ready),
        shape=lambda wildcards: (
            "--seed {seed} --vocab-size {vocab_size} --d-model {d_model} --layers {layers} --heads {heads} "
            "--context {context}".format(**MODELS[wildcards.model])
        ),
    log:
        f"{LOGS}/models/{{model}}.log",
    message:
        "Build the tiny decoder-only model {wildcards.model} and train its tokenizer"
    conda:
        TFEW_ENV
    threads: threads_for("model")
    resources:
        **resources_for("model"),
    shell:
        "tfew model tiny-causal --texts {input.texts} {params.shape} --out {params.out} > {log} 2>&1"


rule download_model:
    output:
        ready="resources/models/{model}/tfew_model.json",
    wildcard_constraints:
        model=one_of(HUB_MODELS) if HUB_MODELS else "(?!)",
    params:
        out=lambda wildcards, output: os.path.dirname(output.ready),
        repo=lambda wildcards: MODELS[wildcards.model]["repo"],
        revision=lambda wildcards: MODELS[wildcards.model]["revision"],
    log:
        f"{LOGS}/models/download_{{model}}.log",
    message:
        "Download {params.repo} at commit {params.revision}"
    conda:
        TFEW_ENV
    threads: threads_for("download")
    resources:
        **resources_for("download"),
    shell:
        "tfew model download --repo {params.repo} --revision {params.revision} --out {params.out} > {log} 2>&1"
