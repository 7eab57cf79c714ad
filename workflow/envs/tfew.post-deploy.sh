#!/usr/bin/env bash
# Snakemake runs this once after creating the conda environment of workflow/envs/tfew.yaml.
# promptsource 0.2.3 declares python<3.10 and pins an old streamlit that only its UI needs, so it is
# installed without dependencies; everything it imports at run time comes with the tfew package.
set -euo pipefail
pip install --no-deps --ignore-requires-python promptsource==0.2.3
