# Analysis stage: aggregate the predictions, run the significance tests, then execute the notebooks that write
# the paper's tables and figures into paper_figures/<run>/.

from tfew.aggregate import TABLE_NAMES as AGGREGATE_TABLES
from tfew.report import (
    FIGURE_FORMATS,
    REPORT_FIGURES,
    REPORT_TABLES,
    SIGNIFICANCE_REPORT_TABLES,
    TABLE_FORMATS,
)
from tfew.stats import SIGNIFICANCE_TABLES


rule aggregate:
    input:
        predictions=prediction_files(),
        render_counts=expand(f"{RESULTS}/data/{{task}}/render_stats.json", task=TASKS),
    output:
        expand(f"{RESULTS}/aggregate/{{name}}.csv", name=AGGREGATE_TABLES),
    params:
        out=lambda wildcards, output: os.path.dirname(output[0]),
    log:
        f"{LOGS}/aggregate.log",
    message:
        "Aggregate accuracy over seeds x templates"
    conda:
        TFEW_ENV
    threads: threads_for("analysis")
    resources:
        **resources_for("analysis"),
    shell:
        "tfew aggregate --predictions {input.predictions} --render-counts {input.render_counts} "
        "--out {params.out} > {log} 2>&1"


rule significance:
    input:
        predictions=prediction_files(),
    output:
        expand(f"{RESULTS}/significance/{{name}}.csv", name=SIGNIFICANCE_TABLES),
    params:
        out=lambda wildcards, output: os.path.dirname(output[0]),
    log:
        f"{LOGS}/significance.log",
    message:
        "Test each pair of methods per task (Wilcoxon, permutation, bootstrap, McNemar, Holm)"
    conda:
        TFEW_ENV
    threads: threads_for("analysis")
    resources:
        **resources_for("analysis"),
    shell:
        "tfew significance --predictions {input.predictions} --out {params.out} > {log} 2>&1"


rule report:
    input:
        aggregate=rules.aggregate.output,
        significance=rules.significance.output,
        costs=REPORT_COSTS,
        paper_notebook="analysis/paper_report.ipynb",
        significance_notebook="analysis/significance.ipynb",
    output:
        tables=expand(f"{FIGURES}/{{name}}.{{suffix}}", name=REPORT_TABLES + SIGNIFICANCE_REPORT_TABLES,
                      suffix=TABLE_FORMATS),
        figures=expand(f"{FIGURES}/{{name}}.{{suffix}}", name=REPORT_FIGURES, suffix=FIGURE_FORMATS),
        paper_notebook=f"{RESULTS}/notebooks/paper_report.ipynb",
        significance_notebook=f"{RESULTS}/notebooks/significance.ipynb",
    params:
        figures=lambda wildcards, output: os.path.dirname(output.tables[0]),
        costs_file=lambda wildcards, input: input.costs[0] if input.costs else COSTS_FILE,
        model=BACKBONE_DESCRIPTION,
        kind=MODELS[BACKBONE]["kind"],
        run_parameters=(
            f"-p results_dir {RESULTS} -p figures_dir {FIGURES} -p run_name {RUN} "
            f"-p model_kind {MODELS[BACKBONE]['kind']} -p config_hash {CONFIG_HASH}"
        ),
    log:
        f"{LOGS}/report.log",
    message:
        "Execute the report and significance notebooks into {params.figures}"
    conda:
        TFEW_ENV
    threads: threads_for("analysis")
    resources:
        **resources_for("analysis"),
    shell:
        "(tfew notebook --notebook {input.paper_notebook} --out {output.paper_notebook} {params.run_parameters} "
        "-p model_description {params.model:q} -p costs_file {params.costs_file} "
        "&& tfew notebook --notebook {input.significance_notebook} --out {output.significance_notebook} "
        "{params.run_parameters} -p model_description {params.model:q}) > {log} 2>&1"
