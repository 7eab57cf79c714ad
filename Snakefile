# The T-Few replication DAG. Pick the size with --configfile:
#   snakemake --profile workflow/profiles/local --configfile workflow/config/demo.yaml
#   snakemake --profile workflow/profiles/slurm --configfile workflow/config/paper.yaml
# Every rule calls the `tfew` command line; rules exchange files only. workflow/config/README.md
# documents the config keys, and the README's "Workflow" section covers dry runs and resuming.


# The demo config applies only when the command line names none: snakemake merges a `configfile:` into the
# config given with --configfile key by key, so demo keys that paper.yaml omits would leak into a paper run.
if not workflow.overwrite_configfiles:

    configfile: "workflow/config/demo.yaml"


# common.smk validates the config against workflow/config/schema.yaml before any rule exists.
include: "workflow/rules/common.smk"


wildcard_constraints:
    task=one_of(TASKS),
    seed=r"\d+",
    loss=one_of(["lm", "lm+ul", "lm+ln", "lm+ul+ln"]),
    init="scratch|pretrained",
    model=one_of(MODELS),
    mode="concat|ensemble",


include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/zero_shot.smk"
include: "workflow/rules/icl.smk"
include: "workflow/rules/costs.smk"
include: "workflow/rules/analysis.smk"


rule all:
    input:
        prediction_files(),
        cost_files(),
        rules.report.output,
    default_target: True


# Every prediction and cost file, without the analysis: `snakemake predictions`.
rule predictions:
    input:
        prediction_files(),
        cost_files(),
