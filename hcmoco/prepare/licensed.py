"""Layout checks for datasets that need registration: say where to get them and where to put them."""
from __future__ import annotations

from pathlib import Path

from hcmoco.prepare.registry import LicensedDataset, get_dataset
from hcmoco.errors import HcmocoError


class LayoutError(HcmocoError):
    """Files of a licensed dataset are missing under its root."""


def _matches(root: Path, pattern: str) -> bool:
    return any(p.is_file() for p in root.glob(pattern))


def layout_message(dataset: LicensedDataset, root: Path, missing: list[str]) -> str:
    """One line: what is missing, where to request the data, and the expected layout."""
    where = "; ".join(f"{root}/{e.pattern} [{e.what}]" for e in dataset.layout)
    notes = "".join(f"; {note.format(root=root)}" for note in dataset.notes)
    return (f"{dataset.name}: missing under {root}: {', '.join(missing)}. {dataset.title} needs registration: "
            f"request it at {dataset.request_url}, then place the files as: {where}{notes}")


def check_layout(name: str, root: str | Path) -> dict[str, dict]:
    """Raise LayoutError unless every layout pattern matches a file under `root`.

    Returns, per pattern, the number of matching files and their total size in bytes.
    """
    dataset = get_dataset(name)
    if not isinstance(dataset, LicensedDataset):
        raise HcmocoError(f"{name}: a public dataset, fetched by download rather than checked in place")
    root = Path(root)
    missing = [e.pattern for e in dataset.layout if not root.is_dir() or not _matches(root, e.pattern)]
    if missing:
        raise LayoutError(layout_message(dataset, root, missing))
    counts = {}
    for entry in dataset.layout:
        files = size = 0
        for path in root.glob(entry.pattern):
            if path.is_file():
                files, size = files + 1, size + path.stat().st_size
        counts[entry.pattern] = {"files": files, "bytes": size}
    return counts
