# A one-job workflow whose job fails on purpose, so that `make demo-slurm` can check how a failure through the
# SLURM profile is reported: snakemake must exit non-zero and name the rule, its wildcards and the SLURM log.
# demo_slurm.sh runs it with --directory set to a scratch folder; it writes nothing into the project.


rule all:
    input:
        "out/task_rte/seed_42.txt",
    default_target: True


rule fail_on_purpose:
    output:
        "out/task_{task}/seed_{seed}.txt",
    log:
        "logs/fail_on_purpose/{task}_seed{seed}.log",
    message:
        "Fail on purpose for task {wildcards.task}, seed {wildcards.seed}"
    resources:
        mem_mb=100,
        runtime=5,
        gpu=1,
    shell:
        "echo 'this job fails on purpose (task {wildcards.task}, seed {wildcards.seed})' | tee {log}; exit 3"
