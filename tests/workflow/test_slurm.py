"""The workflow on a real SLURM cluster: one node on localhost (Debian's slurm-wlm and munge, SLURM
22.05) with its own configuration, state and logs in a temporary folder, driven through
workflow/profiles/slurm and snakemake-executor-plugin-slurm.

- the smoke DAG (its pre-training part and one task, TARGETS; HCMOCO_SLURM_DAG=all: all of it)
  runs job by job through sbatch, with a fault: the stage-1 pre-training job is cancelled
  (scancel) after its first checkpoint; the profile's retries resubmit it, it resumes from the
  checkpoint, and every metric equals the local run's;
- a job SLURM kills for its memory limit ends the run with a line naming the rule's mem_mb;
- `pretrain.processes: 2` makes the rules launch torchrun; two gloo processes in one SLURM job
  resume a one-process run and match its next step (as tests/cli/test_pretrain_distributed.py
  does without SLURM).

The cluster has no accounting database (AccountingStorageType=accounting_storage/none), so
`sacct` has nothing to say: the plugin reads job states from `squeue` (--slurm-status-command
squeue), which keeps finished jobs for MinJobAge (300 s) and reports their end state (COMPLETED,
CANCELLED, FAILED, OUT_OF_MEMORY, TIMEOUT). Memory limits are enforced without cgroups by slurmd's
accounting poll (JobAcctGatherParams=OverMemoryKill, every second).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch

from hcmoco.cluster import limit_failures
from tests.cli.test_pretrain_distributed import OVERRIDES, params_only, relative, weights_of
from tests.workflow.conftest import computed, copy_repo

DAEMONS = ["munged", "slurmctld", "slurmd"]
CLIENTS = ["sbatch", "squeue", "scancel", "sinfo"]
# where SLURM's client commands find the configuration when SLURM_CONF is not set (the cache a
# configless slurmd keeps): the plugin's job step drops every SLURM_* variable, SLURM_CONF
# included, before its inner `srun`, so the node offers the test's configuration there
NODE_CONFIG = Path("/run/slurm/conf")
# the local cluster's partition and small resources, on the command line over the profile's
# (2 cores: one per job, so two jobs run at a time as in the local run; memory each job fits in)
TRAINING_RULES = ["pretrain_stage1", "pretrain_stage2", "finetune", "versatility", "frozen"]
def profile_args(*resources: str) -> list[str]:
    """The profile and the command-line values over it; `resources`: more --set-resources."""
    return ["--workflow-profile", "workflow/profiles/slurm",
            "--default-resources", "slurm_partition=local", "runtime=30", "mem_mb=2500", "cpus_per_task=1",
            "--set-resources", *[f"{rule}:{key}" for rule in TRAINING_RULES for key in ("mem_mb=2500", "cpus_per_task=1")],
            *resources, "--slurm-status-command", "squeue", "--slurm-no-account",
            "--slurm-init-seconds-before-status-checks", "1"]


# The part of the smoke DAG that runs through SLURM in CI: every pre-training job and the retrieval
# check, one fine-tuning task from scratch and from a pre-trained init, its frozen-feature job, a
# preview: 15 jobs of 8 rules. Each SLURM job starts Snakemake twice (the plugin's job step, then
# the job under srun), about 4 s of CPU a job: the whole DAG (57 jobs) takes 6 min on 2 cores
# against 3 for the local run. HCMOCO_SLURM_DAG=all runs all of it.
TARGETS = ["results/smoke/pretrain/retrieval.json", "results/smoke/preview/synth_ntu.png",
           "results/smoke/finetune/parsing/init~scratch", "results/smoke/finetune/parsing/init~hcmoco",
           "results/smoke/frozen/parsing/init~scratch"]


def dag_targets() -> list[str]:
    return [] if os.environ.get("HCMOCO_SLURM_DAG") == "all" else TARGETS


def _sbin(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _unavailable() -> str | None:
    missing = [b for b in DAEMONS + CLIENTS if not _sbin(b)]
    if missing:
        return f"SLURM is not installed (no {', '.join(missing)}: apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the test cluster's daemons (munged, slurmctld, slurmd) run as root"
    if Path("/etc/slurm/slurm.conf").exists() or os.path.lexists(NODE_CONFIG):
        return f"this machine belongs to a SLURM cluster (/etc/slurm/slurm.conf or {NODE_CONFIG} exists)"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (requirements.txt)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
              if line.startswith("MemTotal:"))
    return int(kb / 1024 * 0.9)


# decided at collection, so that no other fixture (the local smoke run) is built for a skipped test
needs_slurm = pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))


class Cluster:
    """munged, slurmctld and slurmd as root, everything under `root`; stop() ends them."""

    def __init__(self, root: Path):
        self.root = root
        self.host = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.pidfiles = {d: root / f"{d}.pid" for d in DAEMONS}
        self.linked = self.made_parent = False

    def write_config(self) -> None:
        for d in ("state", "spool", "log"):
            (self.root / d).mkdir()
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        (self.root / "plugstack.conf").write_text("")
        r = self.root
        self.conf.write_text(f"""\
ClusterName=hcmoco-test
SlurmctldHost={self.host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={r}/munge.socket
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={self.pidfiles['slurmctld']}
SlurmdPidFile={self.pidfiles['slurmd']}
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
PlugStackConfig={r}/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=300
KillWait=5
ReturnToService=2
MpiDefault=none
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={_memory_mb()} State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")

    def start(self) -> None:
        self.write_config()
        r = self.root
        subprocess.run([_sbin("munged"), "--force", f"--socket={r}/munge.socket", f"--key-file={r}/munge.key",
                        f"--log-file={r}/log/munged.log", f"--pid-file={self.pidfiles['munged']}",
                        f"--seed-file={r}/munged.seed"], check=True, capture_output=True)
        subprocess.run([_sbin("slurmctld"), "-f", str(self.conf)], check=True, capture_output=True, env=self.env)
        subprocess.run([_sbin("slurmd"), "-f", str(self.conf)], check=True, capture_output=True, env=self.env)
        self.made_parent = not NODE_CONFIG.parent.exists()
        NODE_CONFIG.parent.mkdir(parents=True, exist_ok=True)
        NODE_CONFIG.symlink_to(r, target_is_directory=True)
        self.linked = True
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=self.env, capture_output=True, text=True)
            if state.stdout.strip() == "idle":
                return
            time.sleep(0.5)
        raise RuntimeError(f"the test node did not come up: {self.log('slurmctld')[-2000:]}{self.log('slurmd')[-2000:]}")

    def stop(self) -> None:
        subprocess.run(["scancel", "--full", "--user", "root"], env=self.env, capture_output=True)
        for daemon in ("slurmd", "slurmctld", "munged"):
            pidfile = self.pidfiles[daemon]
            try:
                pid = int(pidfile.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        if self.linked and NODE_CONFIG.is_symlink():
            NODE_CONFIG.unlink()
            if self.made_parent:
                NODE_CONFIG.parent.rmdir()

    def log(self, daemon: str) -> str:
        path = self.root / "log" / f"{daemon}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def squeue(self) -> dict[str, dict[str, str]]:
        """Every job slurmctld still holds (finished ones for MinJobAge): id -> state, comment, name."""
        out = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i|%T|%k|%j"], env=self.env,
                             capture_output=True, text=True, check=True).stdout
        return {f[0]: {"state": f[1], "comment": f[2], "name": f[3]}
                for f in (line.split("|") for line in out.splitlines() if line.strip())}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    c = Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


def slurm_env(cluster, venv_env) -> dict:
    return {**venv_env, "SLURM_CONF": str(cluster.conf)}


def _training_processes(repo: Path, stage: str) -> list[int]:
    """Pids of this copy's `python -m hcmoco.train.pretrain --stage <stage>` processes."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if ("hcmoco.train.pretrain" in args and "--stage" in args and args[args.index("--stage") + 1] == stage
                    and Path(os.readlink(proc / "cwd")) == repo):
                pids.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return pids


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def submissions(output: str) -> list[tuple[str, str, str]]:
    """(Snakemake job id, SLURM job id, rule) of every sbatch submission the plugin reported."""
    return re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/", output)


def job_stats(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1].split("\n\n")[0]
    rows = [line.split() for line in table.splitlines()[3:]]
    return {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[0] != "total"}


def test_limit_messages_name_the_resource(tmp_path, monkeypatch):
    """The lines `onerror` prints, from the plugin's error blocks (its wording, SLURM's log lines)."""
    monkeypatch.chdir(tmp_path)
    logs = tmp_path / ".snakemake/slurm_logs"
    (logs / "rule_finetune/parsing_hcmoco").mkdir(parents=True)
    (logs / "rule_finetune/parsing_hcmoco/41.log").write_text(
        "    resources: tmpdir=<TBD>, mem_mb=32000, runtime=2880, cpus_per_task=8\n"
        "slurmstepd: error: *** JOB 41 ON node7 CANCELLED AT 2026-01-02T03:04:05 DUE TO TIME LIMIT ***\n")
    (logs / "rule_retrieval").mkdir(parents=True)
    (logs / "rule_retrieval/42.log").write_text("slurmstepd: error: Exceeded job memory limit\n")

    def block(rule, job, state, log):
        return (f"Error in rule {rule}:\n    message: SLURM-job '{job}' failed, SLURM status is: '{state}'. Detailed "
                f"failure reason unavailable (status command is not 'sacct').\n    jobid: 7\n    output: x\n"
                f"    log: logs/x.log, {log} (check log file(s) for error details)\n\n")

    text = (block("finetune", 41, "TIMEOUT", logs / "rule_finetune/parsing_hcmoco/41.log")
            + block("retrieval", 42, "FAILED", logs / "rule_retrieval/42.log")
            + block("aggregate", 43, "FAILED", logs / "rule_aggregate/43.log")   # the command failed: no limit
            + block("pretrain_stage1", 44, "OUT_OF_MEMORY", logs / "none/44.log"))
    lines = [f.message() for f in limit_failures(text)]
    assert lines == [
        "rule finetune: SLURM killed job 41 (TIMEOUT) for exceeding its time limit (runtime=2880 minutes): raise "
        "runtime of finetune (set-resources: finetune: runtime in workflow/profiles/slurm/config.yaml or your copy "
        "of it, or --set-resources finetune:runtime=5760)",
        "rule retrieval: SLURM killed job 42 (FAILED) for exceeding its memory: raise mem_mb of retrieval "
        "(set-resources: retrieval: mem_mb in workflow/profiles/slurm/config.yaml or your copy of it, or "
        "--set-resources retrieval:mem_mb=<MB>)",
        "rule pretrain_stage1: SLURM killed job 44 (OUT_OF_MEMORY) for exceeding its memory: raise mem_mb of "
        "pretrain_stage1 (set-resources: pretrain_stage1: mem_mb in workflow/profiles/slurm/config.yaml or your "
        "copy of it, or --set-resources pretrain_stage1:mem_mb=<MB>)"]


def pretrain_commands(repo: Path, env: dict) -> dict[str, str]:
    """The dry run's pre-training commands, by stage ('1', '2')."""
    out = subprocess.run(["snakemake", "-n", "-p", "--forceall", "--nocolor", "models/smoke/pretrain/hcmoco"],
                         cwd=repo, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    commands = [" ".join(line.split()[2:]) for line in (out.stdout + out.stderr).splitlines()
                if line.startswith("Shell command: ") and "hcmoco.train.pretrain" in line]
    return {re.search(r"--stage (\d)", c).group(1): c for c in commands}


def test_processes_launch_torchrun(tmp_path, repo_root, venv_env):
    repo = copy_repo(repo_root, tmp_path / "repo", profile="smoke")
    params = repo / "params/params.yaml"
    params.write_text(params.read_text().replace("  processes: 1\n", "  processes: 2\n", 1))
    commands = pretrain_commands(repo, venv_env)
    assert set(commands) == {"1", "2"}
    for command in commands.values():
        assert command.startswith("torchrun --standalone --nproc-per-node 2 -m hcmoco.train.pretrain --params "), command


@pytest.mark.slow
@needs_slurm
def test_smoke_dag_on_slurm_survives_a_cancelled_job(cluster, built, built_results, tmp_path, repo_root, venv_env):
    repo = copy_repo(repo_root, tmp_path / "repo", profile="smoke")
    env = slurm_env(cluster, venv_env)
    log = tmp_path / "snakemake.out"
    started = time.monotonic()
    with log.open("w") as out:
        run = subprocess.Popen(["snakemake", *profile_args(), *dag_targets()],
                               cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            # the fault: stage 1's job cancelled once its first checkpoint is on disk. Its processes
            # are stopped first (SIGSTOP, at once) so that the job cannot finish before scancel lands.
            checkpoint = None
            while checkpoint is None and run.poll() is None and time.monotonic() - started < 900:
                checkpoint = next((repo / "checkpoints/models/smoke/pretrain/stage1").glob("*/last.pt"), None)
                time.sleep(0.02)
            assert checkpoint is not None, log.read_text()[-5000:]
            for pid in _training_processes(repo, "1"):
                os.kill(pid, signal.SIGSTOP)
            [cancelled] = [j for j, v in cluster.squeue().items()
                           if v["comment"] == "rule_pretrain_stage1" and v["state"] == "RUNNING"]
            subprocess.run(["scancel", cancelled], env=env, check=True)
            rc = run.wait(timeout=900)
        finally:
            if run.poll() is None:
                run.kill()
    seconds = time.monotonic() - started
    output = log.read_text()
    assert rc == 0, output[-8000:]

    # every job of the DAG went through sbatch, stage 1 twice; slurmctld received exactly those
    jobs = submissions(output)
    per_rule = {}
    for _, _, rule in jobs:
        per_rule[rule] = per_rule.get(rule, 0) + 1
    stats = job_stats(output)
    assert per_rule == {r: n + (r == "pretrain_stage1") for r, n in stats.items() if r != "all"}, (per_rule, stats)
    assert len({s for s, _, _ in jobs}) == sum(n for r, n in stats.items() if r != "all")
    slurm_ids = [j for _, j, _ in jobs]
    ctld = cluster.log("slurmctld")
    assert len(set(re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", ctld))) >= len(slurm_ids)
    stage1 = [j for _, j, r in jobs if r == "pretrain_stage1"]
    assert stage1[0] == cancelled and f"REQUEST_KILL_JOB JobId={cancelled} " in ctld
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in output
    assert [j for j in slurm_ids if j != cancelled and f"_job_complete: JobId={j} WEXITSTATUS 0" not in ctld] == []

    # the resubmitted job resumed from the checkpoint of step 3 (pretrain.checkpoint_every)
    events = _events(repo / "logs/models/smoke/pretrain/stage1.jsonl")
    assert [e["event"] for e in events] == ["start", "checkpoint", "start", "resumed", "done"], events
    assert events[1]["step"] == events[3]["step"] == 3
    # the job's log (Snakemake starts it anew for the retry): the progress bar starts at step 3 of 6
    progress = re.findall(r"\| (\d)/6 \[", (repo / "logs/models/smoke/pretrain/stage1.log").read_text())
    assert progress and progress[0] == "3", progress

    # the same numbers as the uninterrupted local run; stage 1's metrics say where it resumed
    assert json.loads((repo / "models/smoke/pretrain/stage1/metrics.json").read_text())["resumed_from"] == 3
    assert json.loads((built / "models/smoke/pretrain/stage1/metrics.json").read_text())["resumed_from"] == 0
    ours = computed(repo)
    assert ours.keys() <= built_results.keys() and "results/smoke/pretrain/retrieval.json" in ours
    if not dag_targets():
        assert ours.keys() == built_results.keys()
    assert any(k.startswith("results/smoke/finetune/parsing/init~hcmoco/") for k in ours)
    assert any(k.startswith("results/smoke/frozen/parsing/init~scratch/") for k in ours)
    for key, value in ours.items():
        assert value == built_results[key], key
    print(f"\nsmoke DAG ({'all' if not dag_targets() else 'CI part'}) through SLURM: {seconds:.0f} s, "
          f"{len(slurm_ids)} sbatch jobs ({len(slurm_ids) - 1} DAG jobs and the resubmitted stage 1), "
          f"{len(ours)} results equal to the local run's")

    # a job SLURM kills for its memory limit: the run's last lines name the resource to raise
    started = time.monotonic()
    # (--forcerun takes every word up to the next option: the target comes after --retries)
    oom = subprocess.run(["snakemake", *profile_args("retrieval:mem_mb=100"), "--forcerun", "retrieval",
                          "--retries", "0", "results/smoke/pretrain/retrieval.json"],
                         cwd=repo, env=env, capture_output=True, text=True)
    assert oom.returncode != 0
    assert [r for _, _, r in submissions(oom.stdout + oom.stderr)] == ["retrieval"], oom.stderr[-3000:]
    assert re.search(r"rule retrieval: SLURM killed job \d+ \(\w+\) for exceeding its memory( \(mem_mb=100 MB\))?: "
                     r"raise mem_mb of retrieval \(set-resources: retrieval: mem_mb in "
                     r"workflow/profiles/slurm/config.yaml", oom.stderr), oom.stderr[-5000:]
    print(f"memory limit: {time.monotonic() - started:.0f} s; {oom.stderr.strip().splitlines()[-1]}")


@pytest.mark.slow
@needs_slurm
def test_two_torchrun_processes_in_one_slurm_job_match_one(cluster, built, tmp_path, repo_root, venv_env,
                                                            monkeypatch):
    """tests/cli/test_pretrain_distributed.py's comparison, the two-process step launched the way the
    rule launches it with `pretrain.processes: 2`, inside one SLURM job (2 CPUs, gloo)."""
    import yaml

    from hcmoco.config import load_params
    from hcmoco.train import pretrain as trainer

    # the launcher the rule puts before `-m hcmoco.train.pretrain` with two processes
    repo = copy_repo(repo_root, tmp_path / "repo", profile="smoke")
    params = repo / "params/params.yaml"
    params.write_text(params.read_text().replace("  processes: 1\n", "  processes: 2\n", 1))
    launcher = pretrain_commands(repo, venv_env)["2"].split(" -m hcmoco.train.pretrain ")[0]

    (tmp_path / "params/profiles").mkdir(parents=True)
    (tmp_path / "params/params.yaml").write_text(params.read_text())
    smoke = yaml.safe_load((repo / "params/profiles/smoke.yaml").read_text())
    smoke["pretrain"] = {**smoke["pretrain"], **OVERRIDES}
    (tmp_path / "params/profiles/dist.yaml").write_text(yaml.safe_dump(smoke))
    data = [built / "data/smoke/synth/synth_ntu", built / "data/smoke/synth/synth_mpii"]

    def args(out, init=None):
        stage = ["--stage", "2", "--variant", "hcmoco", "--init", str(init)] if init else ["--stage", "1"]
        return ["--params", str(tmp_path / "params/params.yaml"), "--profile", "dist", *stage,
                "--data", *map(str, data), "--out", str(out), "--curves", f"{out}_curves"]

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert trainer.main(args(tmp_path / "stage1")) == 0
    assert trainer.main(args(tmp_path / "A", tmp_path / "stage1")) == 0
    cfg = load_params(tmp_path / "params/params.yaml", "dist")["pretrain"]
    assert trainer.pretrain(cfg, 2, cfg["variants"]["hcmoco"], data, tmp_path / "B", None, tmp_path / "stage1",
                            stop_after=1) == {"stopped_at": 1}
    [checkpoint] = (tmp_path / "checkpoints").rglob("last.pt")
    after_step1 = params_only(torch.load(checkpoint, weights_only=True)["model"])

    env = {**slurm_env(cluster, venv_env), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo_root)}
    command = " ".join([launcher, "-m", "hcmoco.train.pretrain", *args(tmp_path / "B", tmp_path / "stage1")])
    job = subprocess.run(["sbatch", "--parsable", "--wait", "--job-name", "hcmoco-torchrun", "--ntasks=1",
                          "--cpus-per-task=2", "--mem=4000", "--time=10", f"--output={tmp_path}/job.log",
                          f"--chdir={tmp_path}", "--wrap", command], env=env, capture_output=True, text=True,
                         timeout=600)
    job_log = (tmp_path / "job.log").read_text() if (tmp_path / "job.log").exists() else ""
    assert job.returncode == 0, job.stderr + job_log[-4000:]
    [job_id] = job.stdout.split()
    assert cluster.squeue()[job_id]["state"] == "COMPLETED"

    metrics = json.loads((tmp_path / "B/metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["resumed_from"] == 1
    one = json.loads((tmp_path / "A_curves/history.json").read_text())
    two = json.loads((tmp_path / "B_curves/history.json").read_text())
    assert two[0] == one[0]
    for key, value in one[1].items():
        assert two[1][key] == pytest.approx(value, rel=1e-9), key
    (model_a, bank_a), (model_b, bank_b) = weights_of(tmp_path / "A"), weights_of(tmp_path / "B")
    assert relative(params_only(model_b), params_only(model_a), after_step1) < 1e-6
    assert all(torch.allclose(bank_a[k], bank_b[k], rtol=0, atol=1e-9) for k in bank_a)
