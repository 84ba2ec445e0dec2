"""The processed format: a dataset split is a directory of a few `.npy` shards plus `index.json`.

Layout of one split directory::

    index.json              format, domain, split, sizes, modalities, field dtypes/shapes, shards
                            (files, sample count and content digest of each)
    rgb-00000.npy ...       one file per (field, shard); arrays are memory-mappable
    kp2d-00000.npy ...

Real-data preprocessors and the SynthHuman renderer both write this format; loaders never
guess: a missing modality is a flag in the index, a missing file or a mismatching array is an
error that names the file.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

import numpy as np

from hcmoco.atomic import atomic_directory
from hcmoco.errors import HcmocoError

FORMAT = "hcmoco-processed/1"
MODALITIES = ("rgb", "depth", "kp2d", "kp3d", "parsing", "iuv", "surface")
NUM_PARTS = 24  # DensePose fine parts: an `iuv` pixel's I is 0 (background) or 1..NUM_PARTS


class FormatError(HcmocoError):
    """A processed split is missing, incomplete or inconsistent with its index."""


class SplitWriter:
    """Writes shards and the index into `out`, atomically (see hcmoco.atomic).

    Use as a context manager; on an exception `out` is left as it was (absent, or the
    previous complete version).
    """

    def __init__(self, out: str | Path, meta: dict):
        self.out = Path(out)
        self.meta = dict(meta)
        self.fields: dict[str, dict] = {}
        self.shards: list[dict] = []
        self._target = atomic_directory(self.out)

    def __enter__(self) -> "SplitWriter":
        self.tmp = self._target.__enter__()
        return self

    def add_shard(self, arrays: dict[str, np.ndarray]) -> None:
        counts = {name: len(a) for name, a in arrays.items()}
        if len(set(counts.values())) != 1:
            raise FormatError(f"{self.out}: shard fields disagree on sample count: {counts}")
        files, digests = {}, {}
        for name, array in sorted(arrays.items()):
            spec = {"dtype": str(array.dtype), "shape": list(array.shape[1:])}
            if self.fields.setdefault(name, spec) != spec:
                raise FormatError(f"{self.out}: field {name!r} changed from {self.fields[name]} to {spec}")
            files[name] = f"{name}-{len(self.shards):05d}.npy"
            array = np.ascontiguousarray(array)
            np.save(self.tmp / files[name], array, allow_pickle=False)
            digests[name] = hashlib.sha256(array.data).hexdigest()[:16]
        # the content digests make index.json stand for the whole split (checkpoint keys)
        self.shards.append({"count": next(iter(counts.values())), "files": files, "sha256": digests})

    def __exit__(self, exc_type, exc, tb) -> bool | None:
        if exc_type is None:
            index = {"format": FORMAT, **self.meta,
                     "num_samples": sum(s["count"] for s in self.shards),
                     "fields": self.fields, "shards": self.shards}
            (self.tmp / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True))
        return self._target.__exit__(exc_type, exc, tb)


class ProcessedSplit:
    """Read-only, memory-mapped view of one processed split.

    `split[i]` returns a dict of per-sample arrays plus `has_<modality>` flags; `split.field(name)`
    concatenates one field over all shards (loads it).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        index_file = self.path / "index.json"
        if not index_file.is_file():
            raise FormatError(f"{index_file}: missing (not a processed split directory)")
        try:
            self.index = json.loads(index_file.read_text())
        except json.JSONDecodeError as err:
            raise FormatError(f"{index_file}: not valid JSON ({err})") from None
        if not isinstance(self.index, dict) or self.index.get("format") != FORMAT:
            found = self.index.get("format") if isinstance(self.index, dict) else None
            raise FormatError(f"{index_file}: format {found!r}, expected {FORMAT!r}")
        for key, kind in (("fields", dict), ("shards", list), ("num_samples", int)):
            if not isinstance(self.index.get(key), kind):
                what = "missing" if key not in self.index else f"not a {kind.__name__}"
                raise FormatError(f"{index_file}: {key}: {what} (an incomplete or hand-edited index; "
                                  f"write the split again)")
        self.fields: dict[str, dict] = self.index["fields"]
        self._shards = [self._open_shard(s) for s in self.index["shards"]]
        self._starts = np.cumsum([0] + [s["count"] for s in self.index["shards"]])
        if self._starts[-1] != self.index["num_samples"]:
            raise FormatError(f"{index_file}: shard counts sum to {self._starts[-1]}, "
                              f"num_samples says {self.index['num_samples']}")

    def _open_shard(self, shard: dict) -> dict[str, np.ndarray]:
        index_file = self.path / "index.json"
        if not isinstance(shard, dict) or not isinstance(shard.get("files"), dict) or not isinstance(
                shard.get("count"), int):
            raise FormatError(f"{index_file}: shards: an entry without `count` and `files`: {shard!r:.80}")
        arrays = {}
        for name, fname in shard["files"].items():
            file = self.path / fname
            if not file.is_file():
                raise FormatError(f"{file}: missing shard file (listed in {index_file})")
            if name not in self.fields:
                raise FormatError(f"{index_file}: shard file {fname} is of field {name!r}, which `fields` lacks")
            array = _open_npy(file)
            spec = self.fields[name]
            if list(array.shape) != [shard["count"], *spec["shape"]] or str(array.dtype) != spec["dtype"]:
                raise FormatError(f"{file}: array {array.dtype}{list(array.shape)} does not match the "
                                  f"index ({spec['dtype']}[{shard['count']}, {spec['shape']}])")
            arrays[name] = array
        return arrays

    @property
    def modalities(self) -> dict[str, bool]:
        return {m: m in self.fields for m in MODALITIES}

    def __len__(self) -> int:
        return int(self.index["num_samples"])

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self.path}: sample {i} out of range ({len(self)} samples)")
        i = i % len(self)
        shard = int(np.searchsorted(self._starts, i, side="right") - 1)
        local = i - self._starts[shard]
        sample = {name: np.asarray(a[local]) for name, a in self._shards[shard].items()}
        sample.update({f"has_{m}": present for m, present in self.modalities.items()})
        return sample

    def field(self, name: str) -> np.ndarray:
        if name not in self.fields:
            raise FormatError(f"{self.path / 'index.json'}: no field {name!r} (has {sorted(self.fields)})")
        return np.concatenate([s[name] for s in self._shards])

    def take(self, indices: np.ndarray, fields: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Gather samples `indices` (any order, repeats allowed) of some fields into arrays.

        Reads each touched shard once with sorted fancy indexing, so a batch costs a few
        memory-mapped reads rather than one per sample.
        """
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"{self.path}: indices outside [0, {len(self)})")
        names = list(self.fields) if fields is None else list(fields)
        for name in names:
            if name not in self.fields:
                raise FormatError(f"{self.path / 'index.json'}: no field {name!r} (has {sorted(self.fields)})")
        shard_of = np.searchsorted(self._starts, indices, side="right") - 1
        out = {n: np.empty((len(indices), *self.fields[n]["shape"]), dtype=self.fields[n]["dtype"]) for n in names}
        for shard in np.unique(shard_of):
            where = np.flatnonzero(shard_of == shard)
            local = indices[where] - self._starts[shard]
            for n in names:
                out[n][where] = self._shards[shard][n][local]
        return out


def _open_npy(file: Path) -> np.ndarray:
    """Memory-map one shard; a truncated or corrupted file is one FormatError naming it (numpy
    alone says "mmap length is greater than file size", or advises allow_pickle, naming nothing)."""
    with file.open("rb") as fh:
        magic = fh.read(len(np.lib.format.MAGIC_PREFIX))
    if magic != np.lib.format.MAGIC_PREFIX:
        raise FormatError(f"{file}: not a .npy array ({'empty file' if not magic else 'no .npy header'}); "
                          f"write the split again")
    try:
        return np.load(file, mmap_mode="r", allow_pickle=False)
    except Exception as err:  # a damaged header raises ValueError, EOFError, SyntaxError, TokenError, ...
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise FormatError(f"{file}: truncated or corrupted .npy shard ({reason}); write the split again") from None


def shard_ranges(num_samples: int, shard_size: int) -> Iterable[tuple[int, int]]:
    """[start, stop) of each shard: fixed by the sizes alone, never by the number of workers."""
    for start in range(0, num_samples, shard_size):
        yield start, min(start + shard_size, num_samples)


def stack_samples(samples: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-sample dicts of arrays (the same keys) -> one dict of stacked arrays: a shard's fields."""
    return {k: np.stack([s[k] for s in samples]) for k in samples[0]}
