"""Fetch a raw dataset: download, verify and extract a public one; check a licensed one's layout.

    python -m hcmoco.prepare.fetch --dataset coco2014 --out data/raw/coco2014
    python -m hcmoco.prepare.fetch --dataset itop --out data/raw/itop \
        --only ITOP_side_test_labels.h5.gz

Writes `<out>/MANIFEST.json` (each file's URL, size, md5, sha256 and what it unpacked to), the
output a Snakemake rule or DVC stage declares. Interrupted downloads resume on the next run; an
archive is unpacked once (EXTRACTED.json remembers which) and, with --remove-archives, deleted
after unpacking. HCMOCO_MIRROR or --mirror fetches from a mirror (see hcmoco.prepare.registry).
A file without a published checksum is checked against the sha256 recorded at its first
confirmed download (CHECKSUMS.json); `--forget FILE` drops a wrong record together with the
downloaded copy, and the same run downloads the file again. An archive that turns out truncated
when unpacked is deleted (with its record) so that the next run downloads it again.
Licensed datasets are only checked: a missing file gives one error naming the request page and
the expected layout under --out.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from hcmoco.atomic import atomic_write_text
from hcmoco.prepare.download import LEDGER_NAME, Ledger, fetch_file
from hcmoco.prepare.extract import CorruptArchiveError, safe_extract
from hcmoco.prepare.licensed import check_layout
from hcmoco.prepare.registry import DATASETS, LicensedDataset, PublicDataset, RemoteFile, get_dataset
from hcmoco.errors import HcmocoError
from hcmoco.runlog import RunLog, log_path_for

MANIFEST_NAME = "MANIFEST.json"
EXTRACTED_NAME = "EXTRACTED.json"


def select_files(dataset: PublicDataset, only: Sequence[str] | None, option: str = "--only") -> list[RemoteFile]:
    """The files named by --only, else every file not marked optional."""
    if not only:
        return [f for f in dataset.files if not f.optional]
    known = {f.name: f for f in dataset.files}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise HcmocoError(f"{option}: {', '.join(unknown)} not in {dataset.name} (files: {', '.join(known)})")
    return [known[name] for name in dict.fromkeys(only)]


def forget_command(dataset: str, out: Path, name: str) -> str:
    return f"python -m hcmoco.prepare.fetch --dataset {dataset} --out {out} --forget {name}"


def forget(dataset: PublicDataset, out: Path, names: Sequence[str]) -> None:
    """Drop the CHECKSUMS.json records of `names` and their downloaded copies (archive, .part,
    .bad, unpacked state), so the fetch that follows downloads and records them afresh. The
    copy goes too: it is what the dropped record vouched for."""
    ledger, state_file = Ledger(out / LEDGER_NAME), out / EXTRACTED_NAME
    extracted = _read_json(state_file)
    for spec in select_files(dataset, names, "--forget"):
        removed = []
        for path in (out / spec.name, out / f"{spec.name}.part", out / f"{spec.name}.bad"):
            if path.is_file():
                path.unlink()
                removed.append(path.name)
        dropped = ledger.forget(spec.name)
        if extracted.pop(spec.name, None) is not None:
            atomic_write_text(state_file, json.dumps(extracted, indent=2, sort_keys=True) + "\n")
        print(f"{spec.name}: " + ("forgot its recorded checksum" if dropped else "no recorded checksum")
              + (f"; deleted {', '.join(removed)}" if removed else ""))


def _tree_size(path: Path) -> dict:
    if not path.is_dir():
        return {"files": 1, "bytes": path.stat().st_size}
    files = size = 0
    for dirpath, _, filenames in os.walk(path):
        files += len(filenames)
        size += sum(os.path.getsize(os.path.join(dirpath, f)) for f in filenames)
    return {"files": files, "bytes": size}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError as err:
        raise HcmocoError(f"{path}: not valid JSON ({err})") from None


def _unpacked(state: dict | None, spec: RemoteFile, out: Path) -> bool:
    """An earlier run unpacked this archive, its checksums still match the registry, its entries exist."""
    return bool(state) and all(state.get(k) == getattr(spec, k) for k in ("md5", "sha256") if getattr(spec, k)) \
        and all((out / entry).exists() for entry in state["entries"])


def fetch_public(dataset: PublicDataset, out: Path, *, only: Sequence[str] | None = None, mirror: str | None = None,
                 remove_archives: bool = False, progress: bool = True, log: RunLog | None = None) -> dict:
    reserved = {MANIFEST_NAME, EXTRACTED_NAME, LEDGER_NAME}
    reserved |= {f.name + suffix for f in dataset.files for suffix in ("", ".part", ".bad")}
    extracted = _read_json(out / EXTRACTED_NAME)
    entries = []
    for spec in select_files(dataset, only):
        state = extracted.get(spec.name)
        archive = out / spec.name
        if spec.extract and not archive.exists() and _unpacked(state, spec, out):
            digests = {k: state[k] for k in ("size", "md5", "sha256", "checksum")}
            print(f"{spec.name}: unpacked earlier, archive removed")
        else:
            digests = fetch_file(spec, out, mirror=mirror, progress=progress,
                                 forget_hint=f"clear it with `{forget_command(dataset.name, out, spec.name)}`")
            unverified = "; the server announced no size, so it is not recorded" \
                if digests["checksum"] == "unverified" else ""
            print(f"{spec.name}: {digests['size']} bytes, sha256 {digests['sha256']} ({digests['checksum']}"
                  f"{unverified})")
            if spec.extract and not (_unpacked(state, spec, out) and state["sha256"] == digests["sha256"]):
                others = {e for name, st in extracted.items() if name != spec.name for e in st["entries"]}
                state = {**digests, "entries": _extract(archive, out, reserved | others, digests["checksum"])}
                extracted[spec.name] = state
                atomic_write_text(out / EXTRACTED_NAME, json.dumps(extracted, indent=2, sort_keys=True) + "\n")
                print(f"{spec.name}: unpacked {', '.join(state['entries'])}")
            if spec.extract and remove_archives:
                archive.unlink()
        entry = {"name": spec.name, "url": spec.url, **digests}
        if spec.extract:
            entry["extracted"] = {name: _tree_size(out / name) for name in state["entries"]}
        entries.append(entry)
        if log:
            log.event("file", **entry)
    return {"dataset": dataset.name, "kind": "public", "files": entries}


def _extract(archive: Path, out: Path, reserved: set, checksum: str) -> list[str]:
    """safe_extract; a truncated archive not vouched for by a published checksum is deleted with
    its record, so the next run downloads it again instead of failing on the same bytes."""
    try:
        return safe_extract(archive, out, reserved)
    except CorruptArchiveError as err:
        if checksum == "published":  # the publisher's own bytes: downloading again cannot help
            raise
        archive.unlink(missing_ok=True)
        record = " and its CHECKSUMS.json record" if Ledger(out / LEDGER_NAME).forget(archive.name) else ""
        raise CorruptArchiveError(f"{err}; deleted it{record}, so the next fetch downloads it again") from None


def fetch_licensed(dataset: LicensedDataset, out: Path, only: Sequence[str] | None = None) -> dict:
    if only:
        raise HcmocoError(f"--only: {dataset.name} is licensed; there is nothing to download")
    layout = check_layout(dataset.name, out)
    return {"dataset": dataset.name, "kind": "licensed", "request_url": dataset.request_url, "layout": layout}


def fetch(name: str, out: str | Path, *, only: Sequence[str] | None = None, mirror: str | None = None,
          remove_archives: bool = False, progress: bool = True, log: RunLog | None = None,
          forget_files: Sequence[str] | None = None) -> dict:
    """Fetch or check dataset `name` into `out` and write `out/MANIFEST.json`; returns the manifest.
    `forget_files` are first forgotten (see `forget`)."""
    dataset, out = get_dataset(name), Path(out)
    if isinstance(dataset, LicensedDataset):
        if forget_files:
            raise HcmocoError(f"--forget: {dataset.name} is licensed; nothing was downloaded or recorded")
        manifest = fetch_licensed(dataset, out, only)
    else:
        out.mkdir(parents=True, exist_ok=True)
        if forget_files:
            forget(dataset, out, forget_files)
        manifest = fetch_public(dataset, out, only=only, mirror=mirror, remove_archives=remove_archives,
                                progress=progress, log=log)
    atomic_write_text(out / MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="registry name")
    parser.add_argument("--out", required=True, help="dataset root, by convention data/raw/<dataset>")
    parser.add_argument("--only", nargs="+", metavar="FILE", help="fetch only these registry files")
    parser.add_argument("--mirror", default=None, help="http(s)://host[:port][/prefix] replacing each URL's "
                        "scheme and host (default: $HCMOCO_MIRROR)")
    parser.add_argument("--remove-archives", action="store_true", help="delete archives once unpacked")
    parser.add_argument("--forget", nargs="+", metavar="FILE", help="drop these files' recorded checksums "
                        "(CHECKSUMS.json) and downloaded copies first, then fetch them again")
    args = parser.parse_args(argv)
    try:
        log = RunLog(log_path_for(args.out), {}, dataset=args.dataset, only=args.only, mirror=args.mirror)
        manifest = fetch(args.dataset, args.out, only=args.only, mirror=args.mirror,
                         remove_archives=args.remove_archives, log=log, forget_files=args.forget)
        log.event("done", files=len(manifest.get("files", manifest.get("layout", ()))))
        print(f"{args.dataset}: wrote {Path(args.out) / MANIFEST_NAME}")
    except HcmocoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
