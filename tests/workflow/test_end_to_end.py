"""The smoke profile end to end from a clean copy of the repository: every table and figure,
the report, and what each tool re-runs after a change (Snakemake's params rerun triggers, DVC's
params and deps): nothing when nothing changed; fine-tuning, the frozen-feature jobs that read the
parameter, and aggregation only after a fine-tuning parameter; pre-training and what follows,
never data generation, after a pre-training parameter."""
import csv
import json
import re
import subprocess

import pytest

from tests.workflow.conftest import computed, copy_repo, run

TASKS = ["parsing", "depth_parsing", "pose3d", "densepose"]
CELL = re.compile(r"^(n/a|-?\d+\.\d ± \d+\.\d \(\d+\)|\d+\.\d / \d+(\.\d+)?|\d+\.\d\d)$")


def job_counts(plan: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake dry run."""
    if "Nothing to be done" in plan:
        return {}
    table = plan.split("Job stats:")[1].split("\n\n")[0]
    rows = [line.split() for line in table.splitlines()[3:]]
    return {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[0] not in ("total", "all")}


def edit(path, old, new):
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.slow
def test_every_table_and_figure_exists_and_every_cell_is_a_number_or_na(built):
    tables = built / "results/smoke/tables"
    for name in TASKS + ["ablation", "crossmodal", "missing", "retrieval"]:
        for ext in ("md", "csv", "tex"):
            assert (tables / f"{name}.{ext}").stat().st_size > 0, name
        rows = list(csv.reader((tables / f"{name}.csv").open()))
        cells = [c for row in rows[1:] for c in row[1:]]
        assert cells and all(CELL.match(c) for c in cells), (name, [c for c in cells if not CELL.match(c)])
    for task in TASKS:
        assert (built / f"results/smoke/figures/fractions_{task}.png").stat().st_size > 10_000
        assert (built / f"results/smoke/figures/frozen_fractions_{task}.png").stat().st_size > 10_000
        assert (built / f"results/smoke/finetune/{task}/init~hcmoco/fraction~0.1/seed~0/metrics.json").is_file()
        assert (built / f"results/smoke/frozen/{task}/init~hcmoco/fraction~0.1/seed~0/metrics.json").is_file()
        for ext in ("md", "csv", "tex"):
            assert (tables / f"frozen_{task}.{ext}").stat().st_size > 0, task
    assert (built / "results/smoke/figures/pretrain_losses.png").stat().st_size > 10_000
    summary = list(csv.DictReader((tables / "summary.csv").open()))
    assert {r["expected"] for r in summary} == {"n/a"}  # SynthHuman: no paper number applies
    metrics = json.loads((built / "results/smoke/metrics.json").read_text())
    assert set(metrics) >= set(TASKS) | {f"frozen_{t}" for t in TASKS} and "hcmoco" in metrics["parsing"]


@pytest.mark.slow
def test_snakemake_reruns_what_a_change_touches_and_builds_the_report(built, venv_env):
    assert "Nothing to be done" in run(["snakemake", "-n", "--cores", "2"], built, venv_env)
    params = built / "params/params.yaml"
    original = params.read_text()
    edit(params, "      uv_weight: 1.0\n", "      uv_weight: 2.0\n")  # finetune.tasks.densepose
    # densepose's grids (scratch and the 4 pre-trained inits) and frozen-feature jobs (the frozen head's loss
    # reads finetune.tasks.densepose), nothing else
    assert job_counts(run(["snakemake", "-n", "--cores", "2"], built, venv_env)) == {"finetune": 5, "frozen": 3,
                                                                                      "aggregate": 1, "jobs": 1}
    params.write_text(original)
    edit(params, "tau: 0.07", "tau: 0.1")
    plan = job_counts(run(["snakemake", "-n", "--cores", "2"], built, venv_env))
    # the grids of pre-trained inits (4 tasks x 4) and their frozen-feature jobs (4 x 2); scratch
    # reads no pre-training
    assert plan == {"pretrain_stage1": 1, "pretrain_stage2": 4, "retrieval": 1, "finetune": 16, "frozen": 8,
                    "versatility": 2, "aggregate": 1, "jobs": 1}
    params.write_text(original)
    run(["snakemake", "--report", "report.html"], built, venv_env)
    html = (built / "report.html").read_text(errors="replace")
    assert len(html) > 100_000 and "fractions_parsing.png" in html and "parsing.csv" in html


@pytest.mark.slow
def test_dvc_repro_computes_what_snakemake_computed(built_results, tmp_path_factory, repo_root, venv_env):
    """The same commands with the same params give the same numbers whichever tool runs them
    (Snakemake: two jobs at a time on 2 cores; DVC: one at a time, no thread setting): each job
    takes its threads from params, not from the machine or the scheduler. DVC runs one stage at a
    time, so it reproduces one stage of every kind (with everything upstream: every rendered domain,
    split, pre-training variant) rather than all 57: each kind's command and numbers are shared by its
    other stages."""
    repo = copy_repo(repo_root, tmp_path_factory.mktemp("dvc") / "repo", profile="smoke")
    targets = ["retrieval", "finetune_scratch@densepose", "finetune@parsing-hcmoco", "frozen_scratch@depth_parsing",
               "frozen@pose3d-sample", "versatility@crossmodal"]
    run(["dvc", "repro", *targets], repo, venv_env)
    ours, theirs = built_results, computed(repo)
    for part in ("pretrain/retrieval.json", "finetune/densepose/init~scratch/", "finetune/parsing/init~hcmoco/",
                 "frozen/depth_parsing/init~scratch/", "frozen/pose3d/init~sample/", "versatility/crossmodal/",
                 "pretrain/hcmoco_nodense/curves/"):
        assert any(part in key for key in theirs), part  # each kind was computed by DVC
    assert len(theirs) > 25 and set(theirs) <= set(ours)
    assert [k for k in theirs if ours[k] != theirs[k]] == []


@pytest.mark.slow
def test_dvc_reruns_what_a_change_touches(built, venv_env):
    for cmd in (["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--allow-empty", "-qm", "run"]):
        subprocess.run(cmd, cwd=built, check=True)
    # record the Snakemake outputs as DVC's: the same commands made them
    run(["dvc", "commit", "--force"], built, venv_env)
    run(["git", "add", "-A"], built, venv_env)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--allow-empty", "-qm", "lock"], built, venv_env)
    assert "Running stage" not in run(["dvc", "repro"], built, venv_env)
    params = built / "params/params.yaml"
    original = params.read_text()
    edit(params, "tau: 0.07", "tau: 0.1")
    status = run(["dvc", "status"], built, venv_env)
    assert "pretrain_stage1" in status and "pretrain_stage2@hcmoco" in status
    assert "generate@" not in status and "split@" not in status and "preview@" not in status
    params.write_text(original)
    out = run(["dvc", "exp", "run", "-S", "params/params.yaml:finetune.tasks.parsing.class_weights=none"], built, venv_env)
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    assert ran == {"finetune_scratch@parsing", "finetune@parsing-sample", "finetune@parsing-hcmoco",
                   "finetune@parsing-hcmoco_nodense", "finetune@parsing-hcmoco_nosparse", "frozen_scratch@parsing", "frozen@parsing-sample", "frozen@parsing-hcmoco", "aggregate"}, out[-3000:]
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], built, venv_env))
    changed = {key for metrics in diff.values() for key in metrics}
    assert changed and all(key.startswith(("parsing.", "frozen_parsing.")) for key in changed), diff
    plots = json.loads(run(["dvc", "plots", "diff", "--json"], built, venv_env))
    assert any("parsing.csv" in key for key in plots.get("data", plots))
