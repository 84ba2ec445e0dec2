"""Workflow profiles: valid Snakemake options, rule names that exist, the SLURM plugin's
resource names (a misspelt rule or resource is silently ignored by Snakemake)."""
import re

import pytest
import yaml

from tests.conftest import REPO

PROFILES = REPO / "workflow" / "profiles"
# the resources snakemake-executor-plugin-slurm turns into sbatch flags
SLURM_RESOURCES = {"slurm_partition", "slurm_account", "runtime", "mem_mb", "mem_mb_per_cpu", "cpus_per_task",
                   "cpus_per_gpu", "gpu", "gpu_model", "gres", "constraint", "qos", "slurm_extra", "nodes", "tasks"}
TRAINING_RULES = {"pretrain_stage1", "pretrain_stage2", "finetune"}


def load(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def workflow_rules() -> set[str]:
    sources = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    return {m for path in sources for m in re.findall(r"^rule (\w+):", path.read_text(), re.M)}


@pytest.mark.parametrize("name", ["local", "slurm"])
def test_profile_keys_are_snakemake_options(name):
    from snakemake.cli import get_argument_parser

    options = {s for action in get_argument_parser()._actions for s in action.option_strings}
    profile = load(name)
    assert [k for k in profile if f"--{k}" not in options] == []
    assert profile["keep-going"] is False and profile["printshellcmds"] is True
    assert set(profile["rerun-triggers"]) == {"mtime", "params", "input", "software-env", "code"}


def test_local_profile_uses_every_core():
    assert load("local")["cores"] == "all"


def test_slurm_profile_names_existing_rules_and_plugin_resources():
    profile, rules = load("slurm"), workflow_rules()
    assert TRAINING_RULES <= rules  # the rules this profile was written for still exist
    assert profile["executor"] == "slurm" and profile["jobs"] > 0
    assert set(profile["set-resources"]) <= rules and set(profile["set-threads"]) <= rules
    assert set(profile["default-resources"]) <= SLURM_RESOURCES
    for rule, resources in profile["set-resources"].items():
        assert set(resources) <= SLURM_RESOURCES, rule
        assert not {"mem_mb", "mem_mb_per_cpu"} <= set(resources), rule  # sbatch: one or the other
    for rule in TRAINING_RULES:
        assert profile["set-resources"][rule]["gpu"] == 1, rule
    # partition and account names are site-specific: the command line or a copy of the profile gives them
    for resources in [profile["default-resources"], *profile["set-resources"].values()]:
        assert not {"slurm_partition", "slurm_account"} & set(resources), resources


def test_readme_shows_the_commands():
    text = (PROFILES / "README.md").read_text()
    assert "snakemake --workflow-profile workflow/profiles/slurm --config profile=paper" in text
    assert "snakemake --workflow-profile workflow/profiles/local" in text
