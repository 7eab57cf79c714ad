# The T-Few replication DAG. Pick the size with --configfile:
#   snakemake --profile workflow/profiles/local --configfile workflow/config/demo.yaml
#   snakemake --profile workflow/profiles/slurm --configfile workflow/config/paper.yaml
# Every rule calls the `tfew` command line; rules exchange files only.

from snakemake.utils import validate


configfile: "workflow/config/demo.yaml"


validate(config, "workflow/config/schema.yaml")

RUN = config["run_name"]
RESULTS = f"results/{RUN}"
LOGS = f"logs/{RUN}"
FIGURES = f"paper_figures/{RUN}"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analysis.smk"


rule all:
    input:
        rules.report.output,
    default_target: True
