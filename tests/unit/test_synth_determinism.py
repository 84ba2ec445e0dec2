"""SynthHuman samples are pure functions of (seed, domain, split, index, resolution, subjects)."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hcmoco.synth import DOMAINS, render_batch

RES = 40
SUBJECTS = {"train": 4, "test": 2}


def digest(arrays: dict, row: int) -> dict:
    return {k: hashlib.sha256(np.ascontiguousarray(v[row]).tobytes()).hexdigest() for k, v in sorted(arrays.items())}


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_a_sample_is_identical_alone_in_a_batch_and_in_any_order(domain):
    alone = render_batch(domain, 7, "test", np.array([5]), RES, SUBJECTS)
    batch = render_batch(domain, 7, "test", np.array([3, 5, 8]), RES, SUBJECTS)
    shuffled = render_batch(domain, 7, "test", np.array([8, 6, 5, 3]), RES, SUBJECTS)
    again = render_batch(domain, 7, "test", np.array([5]), RES, SUBJECTS)
    assert digest(alone, 0) == digest(batch, 1) == digest(shuffled, 2) == digest(again, 0)
    assert digest(batch, 0) == digest(shuffled, 3)


def test_a_sample_is_identical_in_another_process():
    code = ("import hashlib, numpy as np; from hcmoco.synth import render_batch; "
            "out = render_batch('synth_densepose', 7, 'train', np.array([2, 9]), 40, {'train': 4, 'test': 2}); "
            "print(*(hashlib.sha256(np.ascontiguousarray(out[k][1]).tobytes()).hexdigest() for k in sorted(out)))")
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=path)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=root)
    here = render_batch("synth_densepose", 7, "train", np.array([9]), RES, SUBJECTS)
    assert result.stdout.split() == list(digest(here, 0).values())


def test_seed_split_and_index_change_the_sample():
    base = render_batch("synth_ntu", 0, "train", np.array([0, 1]), RES, SUBJECTS)
    other_seed = render_batch("synth_ntu", 1, "train", np.array([0]), RES, SUBJECTS)
    other_split = render_batch("synth_ntu", 0, "test", np.array([0]), RES, SUBJECTS)
    for key in ("rgb", "depth", "kp3d"):
        assert not np.array_equal(base[key][0], base[key][1])
        assert not np.array_equal(base[key][0], other_seed[key][0])
        assert not np.array_equal(base[key][0], other_split[key][0])


def test_subject_ids_follow_the_split_ranges():
    train = render_batch("synth_mpii", 0, "train", np.arange(10), RES, SUBJECTS)["subject"]
    test = render_batch("synth_mpii", 0, "test", np.arange(5), RES, SUBJECTS)["subject"]
    assert train.tolist() == [i % 4 for i in range(10)]
    assert test.tolist() == [4 + i % 2 for i in range(5)]


def test_the_same_subject_keeps_the_same_body_across_samples():
    out = render_batch("synth_h36m", 0, "train", np.array([1, 5, 2]), RES, SUBJECTS)  # subjects 1, 1, 2
    bone = lambda kp3d, a, b: np.linalg.norm(kp3d[a] - kp3d[b])  # noqa: E731 - l_hip..l_knee (coco17)
    thigh = [bone(k, 11, 13) for k in out["kp3d"]]
    assert thigh[0] == pytest.approx(thigh[1], abs=1e-3) and thigh[0] != pytest.approx(thigh[2], abs=1e-3)


def test_empty_and_invalid_requests():
    empty = render_batch("synth_itop", 0, "train", np.array([], dtype=int), RES, SUBJECTS)
    assert empty["depth"].shape == (0, RES, RES) and empty["kp2d"].shape == (0, 15, 3)
    with pytest.raises(KeyError, match="unknown SynthHuman domain"):
        render_batch("synth_nope", 0, "train", np.arange(1), RES, SUBJECTS)
    with pytest.raises(ValueError, match="split"):
        render_batch("synth_ntu", 0, "val", np.arange(1), RES, SUBJECTS)
