"""Write a profile's DAG as a DVC pipeline: one DVC stage per Snakemake job.

    python -m hcmoco.dvc_export --profile paper            # -> workflow/dvc/paper/dvc.yaml
    dvc repro workflow/dvc/paper/dvc.yaml

The root dvc.yaml is templated on the base parameters (DVC's templating cannot see a profile
overlay), so it drives the SynthHuman profiles only. This module writes a profile's pipeline
from the stage table hcmoco/stages.py, the one Snakemake's rules read: the jobs the `all` rule
requests for the profile (`planned_jobs`), each with the command, inputs and outputs its rule
gets for that job, the params keys it reads, its metrics and plots, every value literal, so DVC
runs, caches and pushes the profile's fetch manifests, processed data, splits, models and results.

How each job becomes a stage:

- name: `<rule>` for a rule with one job; `<rule>@<key>` for a rule with several, the key being
  the job's wildcard values (joined by `-`), as in the root dvc.yaml. DVC addresses `a@b` names
  only in foreach groups, so such a rule is written as one: each member holds its job's command
  and the deps, params keys and outs that differ between jobs, all literal. Where members have
  different numbers of differing deps (or params keys), the shorter ones repeat an entry (DVC
  accepts a repeated dep).
- cmd: the rule's shell command as Snakemake formats it; `{threads}` is the rule's threads, at
  most `--cores` (1 when not given, as in a dry run).
- wdir: the repository root, relative to the written file; deps, outs and params are relative
  to it.
- deps: the rule's inputs (an input no job makes must exist: the user-placed ImageNet weights,
  for one); a file inside another stage's output folder is replaced by that
  folder (DVC hashes folders as a whole). Code files stay single files.
- outs: Snakemake's outputs (`log:` and `benchmark:` files are left out); an output the stage
  table (hcmoco/stages.py) marks as a metric is declared as one. A fetch job's output is
  `data/raw/<name>/MANIFEST.json` (each file's checksums), not the folder: DVC deletes an output
  before its stage runs, and the folder holds resumable downloads and hand-placed licensed data.
- params: the keys the stage table says the rule reads, in params/params.yaml and in
  `params/profiles/<profile>.yaml` (by their top-level sections, or by the keys themselves for
  `prepare`, so a change reruns that dataset only). A key that a file does not hold is left out
  for that file, since DVC fails on an absent key (e.g. `real.datasets.<name>` is in the overlay
  only). `fetch` and `imagenet_init` track none: their inputs are the registry's files and the
  user-placed weights.
- plots: the table's plot definitions of the files this pipeline writes.

A profile whose outputs the root dvc.yaml already writes (`default`) is refused: DVC does not
allow two stages with one output.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from hcmoco.atomic import atomic_write_text
from hcmoco import stages as table
from hcmoco.config import DEFAULT_PARAMS, load_params, profile_path
from hcmoco.errors import HcmocoError

ROOT_DVC = Path("dvc.yaml")


@dataclass
class Job:
    """One job of the profile's DAG."""
    rule: str
    wildcards: dict[str, str] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    cmd: str | None = None


@dataclass
class Stage:
    """One DVC stage: outputs as (path, section, options) with section outs/metrics/plots."""
    rule: str
    key: str
    cmd: str
    deps: list[str]
    params: dict[str, list[str]]
    outs: list[tuple[str, str, dict | None]]


def default_out(profile: str) -> Path:
    return Path("workflow") / "dvc" / profile / "dvc.yaml"


# --- the plan: the table's jobs with the values Snakemake's rules get --------------------------

class _Wildcards(dict):
    """A job's wildcards as Snakemake hands them to input and params functions."""

    def __getattr__(self, name: str) -> str:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _flat(value: Any, wildcards: _Wildcards) -> list[str]:
    """An input's paths for one job: a function called, `{wildcard}` filled in."""
    value = value(wildcards) if callable(value) else value
    values = value if isinstance(value, (list, tuple)) else [value]
    return [table.path(str(v), "", wildcards) for v in values]


def _format(cmd: str, values: dict[str, Any], rule: str) -> str:
    """Snakemake's formatting of a shell command: `{input.x}` etc., a list joined by spaces."""
    def fill(match: re.Match) -> str:
        kind, _, name = match.group(1).partition(".")
        value = values.get(kind)
        if name:
            value = value.get(name) if isinstance(value, dict) else None
        if value is None:
            raise HcmocoError(f"rule {rule}: {{{match.group(1)}}} in its command has no value")
        return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return re.sub(r"\{(\w+(?:\.\w+)?)\}", fill, cmd)


def table_plan(profile: str, cores: int | None = None) -> list[Job]:
    """Every job of the profile's DAG (hcmoco.stages.planned_jobs, what the `all` rule requests)
    with the command, inputs and outputs Snakemake's rules get from the stage table; `{threads}`
    is the rule's threads, at most `cores` (1 when not given, as in Snakemake's dry run)."""
    params = load_params(DEFAULT_PARAMS, profile)
    rules = table.snakemake_rules(params, profile)
    jobs = []
    for name, wildcards in table.planned_jobs(params):
        rule, wc = rules[name], _Wildcards(wildcards)
        inputs = [p for value in rule.input.values() for p in _flat(value, wc)]
        outputs = [table.path(o, profile, wildcards) for o in rule.output.values()]
        values = {"input": {k: _flat(v, wc) for k, v in rule.input.items()},
                  "output": dict(zip(rule.output, outputs)),
                  "params": {k: v(wc) if callable(v) else v for k, v in rule.params.items()},
                  "wildcards": wildcards, "log": table.path(rule.log, profile, wildcards),
                  "threads": min(rule.threads, cores or 1)}
        jobs.append(Job(name, dict(wildcards), inputs, outputs, _format(rule.shell, values, name)))
    made = [o for job in jobs for o in job.outputs]
    for job in jobs:  # what no job makes must be there (user-placed data, the code)
        missing = [p for p in job.inputs if not Path(p).exists()
                   and not any(p == o or p.startswith(o + "/") for o in made)]
        if missing:
            raise HcmocoError(f"Missing input files for rule {job.rule}: {', '.join(missing)}")
    return jobs


# --- params files ----------------------------------------------------------------------------

def _read_yaml(path: str, cache: dict[str, dict]) -> dict:
    if path not in cache:
        file = Path(path)
        if not file.is_file():
            raise HcmocoError(f"{path}: params file not found")
        cache[path] = yaml.safe_load(file.read_text()) or {}
    return cache[path]


def _has_key(data: dict, dotted: str) -> bool:
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


def _filter_params(params: dict[str, list[str]], cache: dict[str, dict]) -> dict[str, list[str]]:
    """Keep the keys each file holds; drop files left without keys (no keys = the whole file)."""
    kept = {}
    for path, keys in params.items():
        data = _read_yaml(path, cache)
        present = [k for k in dict.fromkeys(keys) if _has_key(data, k)]
        if present:
            kept[path] = present
    return kept


def _stage_params(stage: table.Stage, wildcards: dict[str, str], overlay: str) -> dict[str, list[str]]:
    """The params keys of one job: its keys in the base file, its sections (or keys) in the overlay."""
    keys = stage.keys(wildcards)
    if not keys:
        return {}
    return {str(DEFAULT_PARAMS): keys, overlay: keys if stage.overlay == "keys" else table.sections(keys)}


# --- stages ----------------------------------------------------------------------------------

def _covering(path: str, outs: Iterable[str]) -> str:
    """`path`, or the output folder of another stage holding it."""
    for out in outs:
        if path.startswith(out.rstrip("/") + "/"):
            return out
    return path


def build_stages(jobs: list[Job], profile: str) -> list[Stage]:
    """One stage per job, in DAG order (depth, then rule, then key)."""
    overlay = str(profile_path(DEFAULT_PARAMS, profile))
    cache: dict[str, dict] = {}
    per_rule: dict[str, int] = {}
    for job in jobs:
        per_rule[job.rule] = per_rule.get(job.rule, 0) + 1

    all_outs = sorted({o for job in jobs for o in job.outputs}, key=len, reverse=True)
    producer = {o: i for i, job in enumerate(jobs) for o in job.outputs}
    stages, depends = [], []
    seen: set[str] = set()
    for job in jobs:
        key = "-".join(job.wildcards.values()) if per_rule[job.rule] > 1 else ""
        name = f"{job.rule}@{key}" if key else job.rule
        if (per_rule[job.rule] > 1 and not key) or name in seen:
            raise HcmocoError(f"rule {job.rule}: jobs without distinct wildcard values; "
                              "cannot name one DVC stage per job")
        seen.add(name)
        own = set(job.outputs)
        deps = sorted({_covering(p, [o for o in all_outs if o not in own]) for p in job.inputs})
        depends.append({producer[d] for d in deps if d in producer})

        stage = table.BY_NAME.get(job.rule)
        if stage is None:
            raise HcmocoError(f"rule {job.rule}: not in the stage table (hcmoco/stages.py); cannot choose its params")
        stage_params = _stage_params(stage, job.wildcards, overlay)
        declared = {table.path(o.path, profile, job.wildcards): ("metrics", None)
                    for o in stage.outputs.values() if o.metric}
        outs = [(o, *declared.get(o, ("outs", None))) for o in sorted(job.outputs)]
        stages.append(Stage(job.rule, key, job.cmd or "", deps, _filter_params(stage_params, cache), outs))

    depth: dict[int, int] = {}

    def level(i: int, trail: frozenset = frozenset()) -> int:
        if i in trail:
            raise HcmocoError(f"rule {jobs[i].rule}: the plan has a cycle")
        if i not in depth:
            depth[i] = 1 + max((level(j, trail | {i}) for j in depends[i] if j != i), default=-1)
        return depth[i]

    order = sorted(range(len(stages)), key=lambda i: (level(i), stages[i].rule, stages[i].key))
    return [stages[i] for i in order]


def check_root_overlap(stages: list[Stage]) -> None:
    """Refuse the profile the root dvc.yaml runs (its `profile` in params/params.yaml): every root
    stage writes under `<data|models|results>/<profile>/`, and DVC allows one stage per output."""
    base = _read_yaml(str(DEFAULT_PARAMS), {})
    root_profile = base.get("profile")
    for stage in stages:
        groups = table.BY_NAME[stage.rule].dvc
        for path, _, _ in stage.outs:
            if groups and f"/{root_profile}/" in f"/{path}":
                raise HcmocoError(f"{path}: also an output of stage {groups[-1].name} in {ROOT_DVC}, which "
                                  f"already runs profile {root_profile} (export another profile)")


# --- dvc.yaml --------------------------------------------------------------------------------

def _out_entry(path: str, opts: dict | None) -> Any:
    return {path: dict(opts)} if opts else path


def _stage_body(stage: Stage, wdir: str) -> dict:
    body: dict[str, Any] = {"cmd": stage.cmd, "wdir": wdir}
    if stage.deps:
        body["deps"] = list(stage.deps)
    if stage.params:
        body["params"] = [{path: list(keys)} for path, keys in stage.params.items()]
    for section in ("outs", "metrics", "plots"):
        entries = [_out_entry(p, o) for p, s, o in stage.outs if s == section]
        if entries:
            body[section] = entries
    return body


def _slots(rule: str, what: str, lists: list[list], pad: bool) -> tuple[list, list[list]]:
    """Split per-member lists into the entries all share and equally long per-member rests."""
    common = [x for x in lists[0] if all(x in other for other in lists[1:])]
    rests = [[x for x in lst if x not in common] for lst in lists]
    width = max(len(r) for r in rests)
    for rest in rests:
        if len(rest) < width:
            if not pad or not (rest or common):
                raise HcmocoError(f"rule {rule}: its jobs differ in the number of {what}; "
                                  "cannot write them as one DVC foreach group")
            rest += [(rest or common)[-1]] * (width - len(rest))
    return common, rests


def _group_body(stages: list[Stage], wdir: str) -> dict:
    """A foreach group whose members hold the values that differ between the rule's jobs."""
    rule = stages[0].rule
    items: dict[str, dict[str, str]] = {s.key: {"cmd": s.cmd} for s in stages}
    do: dict[str, Any] = {"cmd": "${item.cmd}", "wdir": wdir}

    def fill(prefix: str, rests: list[list], start: int = 1) -> list[str]:
        for stage, rest in zip(stages, rests):
            items[stage.key].update({f"{prefix}{start + n}": value for n, value in enumerate(rest)})
        return [f"${{item.{prefix}{start + n}}}" for n in range(len(rests[0]))]

    common, rests = _slots(rule, "deps", [s.deps for s in stages], pad=True)
    if common or rests[0]:
        do["deps"] = common + fill("dep", rests)

    files = list(dict.fromkeys(path for s in stages for path in s.params))
    param_list, counter = [], 1
    for path in files:
        common, rests = _slots(rule, f"{path} keys", [s.params.get(path, []) for s in stages], pad=True)
        param_list.append({path: common + fill("param", rests, counter)})
        counter += len(rests[0])
    if param_list:
        do["params"] = param_list

    for section, prefix in (("outs", "out"), ("metrics", "metric"), ("plots", "plot")):
        lists = [[(p, json.dumps(o, sort_keys=True) if o else "") for p, s, o in st.outs if s == section]
                 for st in stages]
        common, rests = _slots(rule, section, lists, pad=False)
        if not (common or rests[0]):
            continue
        for n in range(len(rests[0])):
            if len({rest[n][1] for rest in rests}) > 1:
                raise HcmocoError(f"rule {rule}: its jobs declare {section} with different options; "
                                  "cannot write them as one DVC foreach group")
        names = fill(prefix, [[p for p, _ in rest] for rest in rests])
        entries = [_out_entry(p, json.loads(o) if o else None) for p, o in common]
        entries += [_out_entry(name, json.loads(o) if o else None) for name, (_, o) in zip(names, rests[0])]
        do[section] = entries
    return {"foreach": {key: items[key] for key in sorted(items)}, "do": do}


def _top_level_plots(stages: list[Stage], profile: str, wdir: str) -> list:
    """The table's plot definitions of files this pipeline writes, as paths from this file."""
    outs = [p for s in stages for p, _, _ in s.outs]
    plots = []
    for template, definition in table.plot_definitions(load_params(DEFAULT_PARAMS, profile)):
        path = table.path(template, profile)
        if any(path == o or path.startswith(o + "/") for o in outs):
            plots.append({f"{wdir}/{path}": dict(definition)})
    return plots


class _Dumper(yaml.SafeDumper):
    """No anchors/aliases: each stage reads on its own."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(stages: list[Stage], profile: str, wdir: str, command: str) -> str:
    """The dvc.yaml text: a header, then the stages (foreach groups for multi-job rules)."""
    for stage in stages:
        strings = [stage.cmd, *stage.deps, *(p for p, _, _ in stage.outs),
                   *(k for keys in stage.params.values() for k in keys)]
        if any("${" in s for s in strings):
            raise HcmocoError(f"rule {stage.rule}: `${{` in a command or path; DVC would read it as a template")
    body: dict[str, Any] = {}
    for stage in stages:
        if stage.rule in body:
            continue
        group = [s for s in stages if s.rule == stage.rule]
        body[stage.rule] = _group_body(group, wdir) if stage.key else _stage_body(stage, wdir)
    document: dict[str, Any] = {"stages": body}
    plots = _top_level_plots(stages, profile, wdir)
    if plots:
        document["plots"] = plots
    header = (f"# Generated from hcmoco/stages.py for profile `{profile}` by `{command}`;\n"
              "# do not edit by hand: run the command again after changing the stages or the params.\n"
              "# A rule with several jobs is a foreach group: each member holds its job's own values.\n")
    return header + yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                              width=1 << 20, allow_unicode=True)


def _check_out(out: Path, repo: Path) -> str:
    """Validate the target path; return the stages' wdir (the repo root relative to the file)."""
    if out.name != "dvc.yaml":
        raise HcmocoError(f"{out}: DVC reads pipelines only from files named dvc.yaml")
    target = (repo / out).resolve() if not out.is_absolute() else out.resolve()
    if target.parent == repo.resolve():
        raise HcmocoError(f"{out}: that is the root dvc.yaml (choose a file under workflow/dvc/)")
    try:
        target.relative_to(repo.resolve())
    except ValueError:
        raise HcmocoError(f"{out}: outside the repository {repo}") from None
    try:
        ignored = subprocess.run(["git", "check-ignore", "-q", str(target)], cwd=repo, capture_output=True)
    except FileNotFoundError:  # no git: DVC's own check is all there is
        ignored = None
    if ignored is not None and ignored.returncode == 0:
        raise HcmocoError(f"{out}: ignored by git, and DVC refuses a git-ignored dvc.yaml")
    return Path(os.path.relpath(repo.resolve(), target.parent)).as_posix()


def export(profile: str, out: Path, cores: int | None = None, command: str | None = None) -> list[Stage]:
    """Plan `profile` from the stage table and write its DVC pipeline to `out` (from the repo root)."""
    repo = Path.cwd()
    if not (repo / "Snakefile").is_file():
        raise HcmocoError(f"{repo}: no Snakefile here (run from the repository root)")
    wdir = _check_out(out, repo)
    load_params(DEFAULT_PARAMS, profile)  # a bad profile fails with the params' own message
    stages = build_stages(table_plan(profile, cores), profile)
    check_root_overlap(stages)
    command = command or f"python -m hcmoco.dvc_export --profile {profile} --out {out}"
    atomic_write_text(out, render(stages, profile, wdir, command))
    return stages


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True, help="params/profiles/<profile>.yaml, e.g. paper")
    parser.add_argument("--out", default=None, help="dvc.yaml to write (default: workflow/dvc/<profile>/dvc.yaml)")
    parser.add_argument("--cores", type=int, default=None,
                        help="cores for Snakemake's plan: sets `{threads}` in commands (default: 1)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else default_out(args.profile)
    command = ["python", "-m", "hcmoco.dvc_export", "--profile", args.profile]
    if args.out:
        command += ["--out", args.out]
    if args.cores is not None:
        command += ["--cores", str(args.cores)]
    try:
        stages = export(args.profile, out, args.cores, shlex.join(command))
    except HcmocoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{out}: {len(stages)} stages from hcmoco/stages.py for profile {args.profile} "
          f"(run: dvc repro {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
