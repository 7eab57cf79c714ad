# Set-up, tests and the demo replication. `make test` and `make demo` are all a new user needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv test demo demo-slurm paper-dry-run clean

venv: $(STAMP)

# promptsource 0.2.3 declares python<3.10 and pins an old streamlit that only its UI needs, so it is
# installed on its own without dependencies; everything it imports at run time is in pyproject.toml.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0 "setuptools<81"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m pip install --quiet --no-deps --ignore-requires-python promptsource==0.2.3
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest tests

# The demo replication on this machine's CPUs (workflow/config/demo.yaml, 153 jobs); prints its wall time.
# Rerunning it after an interruption finishes the remaining jobs only.
demo: venv
	@start=$$(date +%s); \
	$(BIN)/snakemake --profile workflow/profiles/local --configfile workflow/config/demo.yaml; \
	status=$$?; echo "demo wall time: $$(( $$(date +%s) - start )) s"; exit $$status

# The paper-size DAG (workflow/config/paper.yaml) built without running or downloading anything: its job table.
paper-dry-run: venv
	$(BIN)/snakemake -n --configfile workflow/config/paper.yaml

# The demo through workflow/profiles/slurm on a single-node Slurm cluster that the target starts and stops
# itself, compared with the local demo run (needs root: it installs Slurm with apt and starts daemons).
demo-slurm: demo
	@start=$$(date +%s); \
	workflow/scripts/slurm/demo_slurm.sh; \
	status=$$?; echo "demo-slurm wall time: $$(( $$(date +%s) - start )) s"; exit $$status

clean:
	rm -rf results/demo logs/demo paper_figures/demo .snakemake
	rm -rf results/demo-slurm logs/demo-slurm paper_figures/demo-slurm logs/slurm
