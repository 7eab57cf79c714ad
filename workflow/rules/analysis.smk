# Analysis stage: aggregate the predictions, then execute the report notebook into paper_figures/.


rule aggregate:
    input:
        predictions=prediction_files(),
    output:
        cells=f"{RESULTS}/aggregate/cells.csv",
        per_task=f"{RESULTS}/aggregate/per_task.csv",
        overall=f"{RESULTS}/aggregate/overall.csv",
    params:
        out=f"{RESULTS}/aggregate",
    log:
        f"{LOGS}/aggregate.log",
    message:
        "Aggregate accuracy over seeds x templates"
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "tfew aggregate --predictions {input.predictions} --out {params.out} > {log} 2>&1"


rule report:
    input:
        per_task=rules.aggregate.output.per_task,
        cells=rules.aggregate.output.cells,
        notebook="analysis/demo_report.ipynb",
    output:
        table=f"{FIGURES}/accuracy_per_task.csv",
        table_md=f"{FIGURES}/accuracy_per_task.md",
        figure_png=f"{FIGURES}/accuracy_per_task.png",
        figure_pdf=f"{FIGURES}/accuracy_per_task.pdf",
        executed=f"{RESULTS}/notebooks/demo_report.ipynb",
    params:
        aggregate_dir=f"{RESULTS}/aggregate",
        figures=FIGURES,
        model=BACKBONE_DESCRIPTION,
    log:
        f"{LOGS}/report.log",
    message:
        "Execute the report notebook into {params.figures}"
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "tfew notebook --notebook {input.notebook} --out {output.executed} "
        "-p aggregate_dir {params.aggregate_dir} -p figures_dir {params.figures} "
        "-p run_name {RUN} -p model_description {params.model:q} > {log} 2>&1"
