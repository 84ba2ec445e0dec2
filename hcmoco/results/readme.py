"""Put a profile's generated results summary into README.md, between two markers.

    python -m hcmoco.results.readme --summary results/default/tables/summary.md --readme README.md

The text between `<!-- results:begin -->` and `<!-- results:end -->` is replaced by the summary
the aggregate rule wrote, so the README's numbers are never typed by hand.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from hcmoco.atomic import atomic_write_text
from hcmoco.cli_common import run_plain_cli
from hcmoco.errors import HcmocoError

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def splice(readme: str, summary: str, source: str) -> str:
    if readme.count(BEGIN) != 1 or readme.count(END) != 1 or readme.index(BEGIN) > readme.index(END):
        raise HcmocoError(f"README: needs one {BEGIN} line followed by one {END} line")
    head, rest = readme.split(BEGIN)
    _, tail = rest.split(END)
    note = f"<!-- generated from {source} by `python -m hcmoco.results.readme`; do not edit by hand -->"
    body = summary.replace("\n### ", "\n#### ")
    if body.startswith("### "):
        body = "#" + body
    return f"{head}{BEGIN}\n{note}\n\n{body.strip()}\n\n{END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summary", required=True, help="summary.md written by hcmoco.results.aggregate")
    parser.add_argument("--readme", default="README.md")

    def body(args) -> str:
        summary, readme = Path(args.summary), Path(args.readme)
        if not summary.is_file():
            raise HcmocoError(f"{summary}: not found (run the pipeline first: make reproduce)")
        atomic_write_text(readme, splice(readme.read_text(), summary.read_text(), str(summary)))
        return f"{args.readme}: results section from {args.summary}"

    return run_plain_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
