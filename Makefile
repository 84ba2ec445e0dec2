# Two commands on a fresh machine: `make reproduce` (default profile) and `make test`.
# Both create the virtual environment when it is missing.
VENV ?= .venv
PROFILE ?= default
CORES ?= all
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: venv reproduce smoke test test-fast report readme-results lint clean-results dvc-pipeline dvc-yaml push pull

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

venv: $(VENV)/.installed

reproduce: venv
	snakemake --workflow-profile workflow/profiles/local --cores $(CORES) --config profile=$(PROFILE)

smoke:
	$(MAKE) reproduce PROFILE=smoke

test: venv
	python -m pytest -q

test-fast: venv
	python -m pytest -q -m "not slow"

lint: venv
	snakemake --lint

report: venv
	snakemake --config profile=$(PROFILE) --report results/$(PROFILE)/report.html

# The root dvc.yaml from the stage table hcmoco/stages.py (after changing a stage or a module's imports)
dvc-yaml: venv
	python -m hcmoco.stages --write

# Snakemake's plan for PROFILE as a DVC pipeline: workflow/dvc/$(PROFILE)/dvc.yaml (`dvc repro` it);
# a numeric CORES sets the threads written into the commands.
dvc-pipeline: venv
	python -m hcmoco.dvc_export --profile $(PROFILE)$(if $(filter-out all,$(CORES)), --cores $(CORES))

# Share data, models and results through the default DVC remote (README: Sharing results through a DVC remote).
push: venv
	dvc push

pull: venv
	dvc pull

readme-results: venv
	python -m hcmoco.results.readme --summary results/default/tables/summary.md --readme README.md
