"""Argument handling shared by the package's command-line entry points."""
from __future__ import annotations

import argparse
import fcntl
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from hcmoco.config import DEFAULT_PARAMS, load_params
from hcmoco.errors import HcmocoError


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help="base params file (default: %(default)s)")
    parser.add_argument("--profile", default=None, help="size profile overlay (default: the params file's)")
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    parser.add_argument("--log", help="append this command's output (stdout, stderr, tracebacks) to this file; "
                                      "one job at a time per log file")
    return parser.parse_args(argv)


_HELD: list = []  # the open log file of this process: its lock lasts as long as the process


def log_output_to(path: Path) -> None:
    """From here on, this process's stdout and stderr (and its children's) go to the end of
    `path`: a re-run appends below a header line, so a killed attempt's output survives.

    The log file doubles as the job's lock: a second process running the same job (the same
    log) while the first is alive, e.g. a second Snakemake or `dvc repro` in the same folder
    after `--unlock`, stops with one line instead of computing into the first one's outputs.
    Under torchrun, process 0 holds the lock for the group."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a")
    if os.environ.get("RANK", "0") == "0":
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise HcmocoError(f"{path}: another process is running this job (it holds its log); "
                              "wait for it or stop it, then run again") from None
    _HELD.append(fh)
    sys.stdout.flush()
    sys.stderr.flush()
    fh.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: {' '.join(sys.argv)}\n")
    fh.flush()
    os.dup2(fh.fileno(), 1)
    os.dup2(fh.fileno(), 2)


def run_cli(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace, dict], None],
            argv: Sequence[str] | None = None) -> int:
    """Parse, resolve params, run; expected failures become one `error:` line and exit code 2."""
    args = _parse(parser, argv)
    try:
        if args.log:
            log_output_to(Path(args.log))
        params = load_params(args.params, args.profile)
        body(args, params)
    except HcmocoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def run_plain_cli(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], str],
                  argv: Sequence[str] | None = None) -> int:
    """Parse and run body(args) -> a line to print, for commands without params; expected
    failures become one `error:` line and exit code 2."""
    args = _parse(parser, argv)
    try:
        if args.log:
            log_output_to(Path(args.log))
        print(body(args))
    except HcmocoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
