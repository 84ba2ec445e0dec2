"""Write a profile's Snakemake DAG as a DVC pipeline: one DVC stage per Snakemake job.

    python -m hcmoco.dvc_export --profile paper            # -> workflow/dvc/paper/dvc.yaml
    dvc repro workflow/dvc/paper/dvc.yaml

The root dvc.yaml is templated on the base parameters (DVC's templating cannot see a profile
overlay), so it drives the SynthHuman profiles only. This module takes Snakemake's own plan for a
profile (`snakemake -n -p --forceall --config profile=<name>`) and writes it out with every value
literal, so DVC runs, caches and pushes the profile's fetch manifests, processed data, splits,
models and results.

How each job becomes a stage:

- name: `<rule>` for a rule with one job; `<rule>@<key>` for a rule with several, the key being
  the job's wildcard values (joined by `-`), as in the root dvc.yaml. DVC addresses `a@b` names
  only in foreach groups, so such a rule is written as one: each member holds its job's command
  and the deps, params keys and outs that differ between jobs, all literal. Where members have
  different numbers of differing deps (or params keys), the shorter ones repeat an entry (DVC
  accepts a repeated dep).
- cmd: Snakemake's shell command; `{threads}` is the dry run's value (1 unless `--cores`).
- wdir: the repository root, relative to the written file; deps, outs and params are relative
  to it.
- deps: Snakemake's inputs; a file inside another stage's output folder is replaced by that
  folder (DVC hashes folders as a whole). Code files stay single files.
- outs: Snakemake's outputs (`log:` files are left out); a file the root dvc.yaml declares as a
  metric or plot of the same rule is declared the same way. A fetch job's output is
  `data/raw/<name>/MANIFEST.json` (each file's checksums), not the folder: DVC deletes an output
  before its stage runs, and the folder holds resumable downloads and hand-placed licensed data.
- params: the keys the root dvc.yaml's stage of the same rule tracks, with
  `params/profiles/<profile>.yaml` as the overlay file. A key that a file does not hold is left
  out for that file, since DVC fails on an absent key (e.g. `real.datasets.<name>` is in the
  overlay only). Rules without a root stage (PROFILE_ONLY_PARAMS): `prepare` tracks
  `real.resolution` and `real.datasets.<dataset>`, the keys of its Snakemake `values` digest,
  so a change reruns that dataset only; `fetch` and `imagenet_init` track none, as their inputs
  are the registry's files and the user-placed weights.

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
from hcmoco.config import DEFAULT_PARAMS, load_params, profile_path
from hcmoco.errors import HcmocoError

ROOT_DVC = Path("dvc.yaml")
# Params of rules that have no stage in the root dvc.yaml: {rule: {file: [keys]}}; `{profile}`
# is the overlay file, `{<wildcard>}` the job's wildcard value.
PROFILE_ONLY_PARAMS: dict[str, dict[str, list[str]]] = {
    "prepare": {str(DEFAULT_PARAMS): ["real.resolution", "real.datasets.{dataset}"],
                "{profile}": ["real.resolution", "real.datasets.{dataset}"]},
    "fetch": {},
    "imagenet_init": {},
}
_EXPR = re.compile(r"\$\{\s*([^}]*?)\s*\}")


@dataclass
class Job:
    """One job of Snakemake's dry run."""
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


# --- Snakemake's plan -----------------------------------------------------------------------

def snakemake_plan(profile: str, cores: int | None = None) -> list[Job]:
    """Dry-run the whole DAG for `profile` (from the repo root) and parse its jobs."""
    cmd = ["snakemake", "-n", "-p", "--nocolor", "--forceall", "--config", f"profile={profile}"]
    if cores is not None:
        cmd[1:1] = ["--cores", str(cores)]
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    except FileNotFoundError:
        raise HcmocoError("snakemake: not found on PATH (make venv installs it)") from None
    text = out.stdout + "\n" + out.stderr
    if out.returncode != 0:
        raise HcmocoError(f"`{' '.join(cmd)}` failed: {_snakemake_error(text)}")
    jobs = [job for job in parse_plan(text) if job.cmd is not None]
    if not jobs:
        raise HcmocoError(f"`{' '.join(cmd)}`: no job with a shell command in the plan")
    return jobs


def _snakemake_error(text: str) -> str:
    """The key line of a failed dry run: missing inputs with their files, else the error line."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Missing input files for rule"):
            files = []
            for follow in lines[i + 1:]:
                if follow.startswith("        "):
                    files.append(follow.strip())
                elif not follow.startswith("    "):
                    break
            return f"{line.rstrip(':')}: {', '.join(files)}" if files else line
    for line in lines:
        if line.startswith("error: "):
            return line[len("error: "):]
    for i, line in enumerate(lines):
        if re.match(r"\w*(Error|Exception)\b", line):
            rest = next((x.strip() for x in lines[i + 1:] if x.strip()), "")
            return f"{line.strip()} {rest}".strip()
    return next((x.strip() for x in reversed(lines) if x.strip()), "no output")


def parse_plan(text: str) -> list[Job]:
    """Jobs of `snakemake -n -p --nocolor` output; `cmd` is None for jobs without a shell command."""
    jobs: list[Job] = []
    current: Job | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(("rule ", "localrule ")) and line.rstrip().endswith(":"):
            current = Job(rule=line.split()[1].rstrip(":"))
        elif current is not None and line.startswith("    input: "):
            current.inputs = line[len("    input: "):].split(", ")
        elif current is not None and line.startswith("    output: "):
            current.outputs = line[len("    output: "):].split(", ")
        elif current is not None and line.startswith("    wildcards: "):
            pairs = (p.split("=", 1) for p in line[len("    wildcards: "):].split(", "))
            current.wildcards = {k: v for k, v in pairs}
        elif current is not None and line.startswith("Shell command: "):
            body = [line[len("Shell command: "):]]
            while i + 1 < len(lines) and lines[i + 1].strip() and body[0] != "None":
                i += 1
                body.append(lines[i])
            cmd = "\n".join(body).strip()
            current.cmd = None if cmd == "None" else cmd
            jobs.append(current)
            current = None
        i += 1
    return jobs


# --- the root dvc.yaml: params keys, metrics and plots per rule --------------------------------

def _lookup(ctx: dict, expr: str, where: str) -> Any:
    value: Any = ctx
    for part in expr.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise HcmocoError(f"{ROOT_DVC}: {where}: ${{{expr}}} not found for this profile")
    return value


def _substitute(value: Any, ctx: dict, where: str) -> Any:
    """Resolve `${a.b}` like DVC's templating: a whole-string reference keeps its type."""
    if isinstance(value, str):
        whole = _EXPR.fullmatch(value)
        if whole:
            return _lookup(ctx, whole.group(1), where)
        return _EXPR.sub(lambda m: str(_lookup(ctx, m.group(1), where)), value)
    if isinstance(value, list):
        return [_substitute(v, ctx, where) for v in value]
    if isinstance(value, dict):
        return {_substitute(k, ctx, where): _substitute(v, ctx, where) for k, v in value.items()}
    return value


def _root_definitions() -> dict:
    if not ROOT_DVC.is_file():
        raise HcmocoError(f"{ROOT_DVC}: not found (run from the repository root)")
    data = yaml.safe_load(ROOT_DVC.read_text()) or {}
    stages = data.get("stages")
    if not isinstance(stages, dict):
        raise HcmocoError(f"{ROOT_DVC}: stages: expected a mapping")
    return data


def _members(name: str, definition: dict, ctx: dict) -> Iterable[tuple[str, dict, dict]]:
    """(stage name, definition, context) of a root stage, foreach groups and matrices expanded."""
    if "matrix" in definition:
        axes = {axis: _substitute(values, ctx, f"stages.{name}.matrix.{axis}")
                for axis, values in definition["matrix"].items()}
        combos = [{}]
        for axis, values in axes.items():
            combos = [{**c, axis: str(v)} for c in combos for v in values]
        for combo in combos:
            yield f"{name}@{'-'.join(combo.values())}", definition, {**ctx, "item": combo}
        return
    if "foreach" not in definition:
        yield name, definition, ctx
        return
    items = _substitute(definition["foreach"], ctx, f"stages.{name}.foreach")
    pairs = items.items() if isinstance(items, dict) else ((str(v), v) for v in items)
    for key, item in pairs:
        yield f"{name}@{key}", definition.get("do") or {}, {**ctx, "key": key, "item": item}


def _root_stage(stages: dict, rule: str, job: Job, ctx: dict) -> tuple[dict, dict] | None:
    """The root stage of `rule` for this job's wildcards, with its templating context."""
    definition = stages.get(rule)
    if definition is None:
        return None
    if "matrix" in definition:  # one matrix axis per wildcard, named alike
        if set(definition["matrix"]) != set(job.wildcards):
            raise HcmocoError(f"{ROOT_DVC}: stages.{rule}: matrix axes {sorted(definition['matrix'])} are not the "
                              f"rule's wildcards {sorted(job.wildcards)}")
        return definition, {**ctx, "item": dict(job.wildcards)}
    if "foreach" not in definition:
        return definition, ctx
    if len(job.wildcards) != 1:
        raise HcmocoError(f"{ROOT_DVC}: stages.{rule}: a foreach group, but the rule's jobs have "
                          f"wildcards {sorted(job.wildcards) or 'none'} (expected one)")
    value = next(iter(job.wildcards.values()))
    items = _substitute(definition["foreach"], ctx, f"stages.{rule}.foreach")
    item = items.get(value) if isinstance(items, dict) else value
    return definition.get("do") or {}, {**ctx, "key": value, "item": item}


def _entries(section: Any) -> list[tuple[str, dict | None]]:
    """(path, options) of an outs/metrics/plots list."""
    result = []
    for entry in section or []:
        if isinstance(entry, dict):
            result += [(str(path), opts) for path, opts in entry.items()]
        else:
            result.append((str(entry), None))
    return result


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


def _stage_params(root_stage: dict, ctx: dict, where: str) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for entry in _substitute(root_stage.get("params") or [], ctx, where):
        if isinstance(entry, dict):
            for path, keys in entry.items():
                params.setdefault(str(path), []).extend(str(k) for k in keys or [])
        else:
            params.setdefault("params.yaml", []).append(str(entry))
    return params


# --- stages ----------------------------------------------------------------------------------

def _covering(path: str, outs: Iterable[str]) -> str:
    """`path`, or the output folder of another stage holding it."""
    for out in outs:
        if path.startswith(out.rstrip("/") + "/"):
            return out
    return path


def build_stages(jobs: list[Job], profile: str) -> list[Stage]:
    """One stage per job, in DAG order (depth, then rule, then key)."""
    params = load_params(DEFAULT_PARAMS, profile)
    overlay = str(profile_path(DEFAULT_PARAMS, profile))
    root = _root_definitions()
    ctx = {**params, "profile": profile}
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

        found = _root_stage(root["stages"], job.rule, job, ctx)
        if found is not None:
            definition, job_ctx = found
            where = f"stages.{name}"
            stage_params = _stage_params(definition, job_ctx, where)
            declared = {}
            for section in ("outs", "metrics", "plots"):
                for path, opts in _entries(_substitute(definition.get(section), job_ctx, where)):
                    declared[path] = (section, opts)
        elif job.rule in PROFILE_ONLY_PARAMS:
            fill = {"profile": overlay, **job.wildcards}
            stage_params = {path.format(**fill): [k.format(**fill) for k in keys]
                            for path, keys in PROFILE_ONLY_PARAMS[job.rule].items()}
            declared = {}
        else:
            raise HcmocoError(f"rule {job.rule}: no stage in {ROOT_DVC} and no entry in "
                              "hcmoco.dvc_export.PROFILE_ONLY_PARAMS; cannot choose its params")
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
    """Refuse outputs that the root dvc.yaml (resolved with its own vars) also declares."""
    root = _root_definitions()
    ctx: dict = {}
    for entry in root.get("vars") or []:
        if isinstance(entry, dict):
            ctx.update(entry)
        elif Path(str(entry).split(":")[0]).is_file():
            ctx.update(yaml.safe_load(Path(str(entry).split(":")[0]).read_text()) or {})
    theirs = []
    for name, definition in root["stages"].items():
        for member, body, member_ctx in _members(name, definition, ctx):
            for section in ("outs", "metrics", "plots"):
                theirs += [(member, p) for p, _ in _entries(_substitute(body.get(section), member_ctx,
                                                                        f"stages.{member}"))]
    for stage in stages:
        for path, _, _ in stage.outs:
            for member, other in theirs:
                if path == other or path.startswith(other + "/") or other.startswith(path + "/"):
                    raise HcmocoError(f"{path}: also an output of stage {member} in {ROOT_DVC}, which "
                                      "already runs this profile (export another profile)")


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
    """The root dvc.yaml's plot definitions of files this pipeline writes, as paths from this file.

    Only definitions templated on `${profile}` alone are carried over (no other vars here)."""
    raw = _root_definitions().get("plots") or []
    if any(ref != "profile" for ref in _EXPR.findall(json.dumps(raw))):
        return []
    outs = [p for s in stages for p, _, _ in s.outs]
    plots = []
    for entry in _substitute(raw, {"profile": profile}, "plots"):
        for path, definition in (entry.items() if isinstance(entry, dict) else [(entry, None)]):
            if any(path == o or path.startswith(o + "/") for o in outs):
                target = f"{wdir}/{path}"
                plots.append({target: dict(definition)} if definition else target)
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
    header = (f"# Generated from Snakemake's plan for profile `{profile}` by `{command}`;\n"
              "# do not edit by hand: run the command again after changing the workflow or the params.\n"
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
    """Plan `profile` with Snakemake and write its DVC pipeline to `out` (from the repo root)."""
    repo = Path.cwd()
    if not (repo / "Snakefile").is_file():
        raise HcmocoError(f"{repo}: no Snakefile here (run from the repository root)")
    wdir = _check_out(out, repo)
    load_params(DEFAULT_PARAMS, profile)  # a bad profile fails with the params' own message
    stages = build_stages(snakemake_plan(profile, cores), profile)
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
    print(f"{out}: {len(stages)} stages from Snakemake's plan for profile {args.profile} "
          f"(run: dvc repro {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
