"""Argument handling shared by the package's command-line entry points."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from hcmoco.config import DEFAULT_PARAMS, load_params
from hcmoco.errors import HcmocoError


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help="base params file (default: %(default)s)")
    parser.add_argument("--profile", default=None, help="size profile overlay (default: the params file's)")
    return parser


def run_cli(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace, dict], None],
            argv: Sequence[str] | None = None) -> int:
    """Parse, resolve params, run; expected failures become one `error:` line and exit code 2."""
    args = parser.parse_args(argv)
    try:
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
    args = parser.parse_args(argv)
    try:
        print(body(args))
    except HcmocoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
