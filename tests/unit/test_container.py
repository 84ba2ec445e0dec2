"""The container definition: the image's Python is the project's, it installs exactly the pins of
requirements.txt as the Makefile does, copies what `make reproduce` reads, and its build context
leaves environments, data, outputs and caches out (.dockerignore)."""
import re
import shlex
import subprocess
import tomllib

import pytest

from tests.conftest import REPO


def instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of every Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            out.append((keyword.upper(), " ".join(args.split())))
    return out


def run_commands() -> list[list[str]]:
    """Each shell command of the RUN instructions (split at && ; ||), as tokens."""
    return [shlex.split(part) for keyword, args in instructions() if keyword == "RUN"
            for part in re.split(r"&&|\|\||;", args) if part.strip()]


def env() -> dict[str, str]:
    return dict(pair.split("=", 1) for keyword, args in instructions() if keyword == "ENV" for pair in shlex.split(args))


def copied() -> list[str]:
    """The build-context paths of the COPY instructions (the last argument is the destination)."""
    return [src.rstrip("/") for keyword, args in instructions() if keyword == "COPY"
            for src in shlex.split(args)[:-1] if not src.startswith("--")]


def _pattern(pattern: str) -> re.Pattern:
    # .dockerignore syntax: paths from the context root, * within a name, ** across folders
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def ignored(path: str) -> bool:
    """Whether the build context leaves path out: the last pattern that matches it or one of its
    folders decides, `!` puts a path back."""
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    state = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern(pattern.lstrip("!").strip("/"))
        if any(regex.match(prefix) for prefix in prefixes):
            state = not negate
    return state


def test_the_image_runs_the_python_minor_version_of_requires_python():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    required = re.fullmatch(r">=\s*(\d+)\.(\d+)", project["requires-python"].split(",")[0].strip())
    assert required, f"pyproject.toml: requires-python {project['requires-python']!r} has no lower bound"
    bases = [args for keyword, args in instructions() if keyword == "FROM"]
    assert len(bases) == 1, bases
    image = re.fullmatch(r"python:(\d+)\.(\d+)(\.\d+)?-slim-bookworm", bases[0])
    assert image, f"Dockerfile: FROM {bases[0]}: expected python:<major>.<minor>-slim-bookworm"
    assert image.group(1, 2) == required.group(1, 2)


def test_the_image_installs_exactly_the_pinned_requirements_and_the_package_without_deps():
    pins = [line.split("#")[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    pins = [p for p in pins if p]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][A-Za-z0-9_.+\-]*", p) for p in pins), pins
    installs = [cmd[cmd.index("install") + 1:] for cmd in run_commands()
                if "pip" in " ".join(cmd[:3]) and "install" in cmd]
    # the Makefile's two steps and nothing else: no extra or unpinned package
    assert installs == [["-r", "requirements.txt"], ["--no-deps", "-e", "."]], installs
    # the pins are in the image before they are installed
    copy_req = next(i for i, (k, a) in enumerate(instructions()) if k == "COPY" and "requirements.txt" in a)
    install_req = next(i for i, (k, a) in enumerate(instructions()) if k == "RUN" and "-r requirements.txt" in a)
    assert copy_req < install_req
    apt = [pkg for cmd in run_commands() if cmd[:1] == ["apt-get"] and "install" in cmd
           for pkg in cmd[cmd.index("install") + 1:] if not pkg.startswith("-")]
    assert "git" in apt, apt  # DVC and the run logs call git
    assert not [pkg for pkg in apt if pkg.startswith(("python3-", "python-"))], apt  # pip owns the Python side


def test_make_finds_the_image_environment_installed():
    """The Makefile's targets depend on $(VENV)/.installed; the image names its environment in VENV and
    leaves the marker after both installs, so `make reproduce` in the image installs nothing."""
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^VENV \?= ", makefile, re.M) and re.search(r"^\$\(VENV\)/\.installed:", makefile, re.M)
    venv = env().get("VENV")
    assert venv, "Dockerfile: ENV VENV is not set"
    assert env()["PATH"].split(":")[0] == f"{venv}/bin"
    commands = run_commands()
    touched = [i for i, cmd in enumerate(commands) if cmd == ["touch", f"{venv}/.installed"]]
    installs = [i for i, cmd in enumerate(commands) if "install" in cmd and "pip" in cmd[0]]
    assert touched and installs and touched[0] > max(installs), commands


def needed_by_make_reproduce() -> set[str]:
    """Top-level paths `make reproduce` reads: the Makefile, the environment's inputs, the package, the
    Snakefile with what it loads, the workflow profile of the recipe, and dvc.yaml for `dvc repro`."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^reproduce:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "Makefile: no reproduce target"
    profile = re.search(r"--workflow-profile (\S+)", recipe.group(1))
    snakefile = (REPO / "Snakefile").read_text()
    loaded = re.findall(r'^(?:configfile|report|include):\s*"([^"]+)"', snakefile, re.M)
    paths = {"Makefile", "requirements.txt", "pyproject.toml", project["readme"], "hcmoco", "Snakefile",
             "dvc.yaml", *loaded, *([profile.group(1)] if profile else [])}
    return {p.split("/")[0] for p in paths}


def test_the_image_copies_what_make_reproduce_reads_and_the_context_holds_it():
    sources = copied()
    for path in sorted(needed_by_make_reproduce()):
        assert (REPO / path).exists(), path
        assert path in sources, f"Dockerfile: {path} is not copied"
        assert not ignored(path), f".dockerignore: {path} is left out of the build context"
    tracked = subprocess.run(["git", "ls-files", "--cached", *sources], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    assert tracked
    left_out = [path for path in tracked if ignored(path) and (REPO / path).exists()]
    assert left_out == [], f".dockerignore leaves out tracked files that COPY names: {left_out[:5]}"


@pytest.mark.parametrize("path", [".venv/bin/python", "data/smoke/synth/synth_ntu/train/index.json",
                                  "results/smoke/metrics.json", "models/smoke/pretrain/hcmoco/model.pt",
                                  "checkpoints/precision/0.json", "logs/data/smoke/splits/parsing.log",
                                  ".dvc/cache/files/md5/00/11", ".snakemake/metadata/x", ".git/HEAD",
                                  "hcmoco/__pycache__/config.cpython-311.pyc"])
def test_the_build_context_leaves_out_environments_outputs_and_caches(path):
    assert ignored(path), path


def test_the_ignore_rules_follow_dockerignore_syntax():
    # the matcher the tests above rely on
    assert _pattern("**/__pycache__").match("a/b/__pycache__") and _pattern("**/__pycache__").match("__pycache__")
    assert _pattern("*.tar").match("x.tar") and not _pattern("*.tar").match("a/x.tar")
    assert _pattern("data").match("data") and not _pattern("data").match("hcmoco/data")
