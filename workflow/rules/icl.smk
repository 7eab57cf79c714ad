# In-context learning baselines: each model in icl.models scores every template with demonstrations from the
# seed's few-shot split, by concatenation (as many demonstrations as fit the context) or by the ensemble of
# Liu et al. 2022, Appendix F (one demonstration per forward pass, scores averaged).


rule icl:
    input:
        model=lambda wildcards: model_ready(wildcards.model),
        data=f"{RESULTS}/data/{{task}}/eval.jsonl",
        train=f"{RESULTS}/data/{{task}}/few_shot_seed{{seed}}.jsonl",
    output:
        predictions=f"{RESULTS}/predictions/icl-{{mode}}/{{model}}/{{task}}/seed{{seed}}.csv",
    params:
        model_dir=lambda wildcards, input: os.path.dirname(input.model),
        options=ICL_OPTIONS,
    log:
        f"{LOGS}/icl/{{mode}}/{{model}}/{{task}}/seed{{seed}}.log",
    message:
        "In-context learning ({wildcards.mode}) with {wildcards.model} on {wildcards.task}, seed {wildcards.seed}"
    conda:
        TFEW_ENV
    threads: threads_for("icl")
    resources:
        **resources_for("icl"),
    shell:
        "tfew icl --model {params.model_dir} --data {input.data} "
        "--train {input.train} --task {wildcards.task} --seed {wildcards.seed} --mode {wildcards.mode} "
        "{params.options} --threads {threads} --out {output.predictions} > {log} 2>&1"
