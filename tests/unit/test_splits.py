
import numpy as np
import pytest

from hcmoco.config import ParamsError
from hcmoco.processed.splits import carve_validation, stratified_order, subset_size


def subjects_of(n_subjects: int, per_subject: int) -> np.ndarray:
    return np.repeat(np.arange(n_subjects), per_subject)


def test_validation_is_subject_disjoint_and_deterministic():
    subjects = subjects_of(20, 30)
    pool, val = carve_validation(subjects, 0.15, seed=0)
    assert set(subjects[pool]).isdisjoint(subjects[val])
    assert len(np.unique(subjects[val])) == 3  # ceil(0.15 * 20)
    assert sorted(np.concatenate([pool, val]).tolist()) == list(range(len(subjects)))
    again = carve_validation(subjects, 0.15, seed=0)
    assert np.array_equal(pool, again[0]) and np.array_equal(val, again[1])
    other = carve_validation(subjects, 0.15, seed=1)
    assert not np.array_equal(val, other[1])


def test_validation_needs_two_subjects():
    with pytest.raises(ParamsError, match="need >= 2 training subjects"):
        carve_validation(subjects_of(1, 10), 0.2, seed=0)


def test_subsets_nest_and_stay_stratified():
    subjects = subjects_of(17, 23)
    pool, _ = carve_validation(subjects, 0.15, seed=0)
    order = stratified_order(pool, subjects, seed=4)
    assert sorted(order.tolist()) == sorted(pool.tolist())
    people = np.unique(subjects[pool])
    previous = set()
    for fraction in [0.01, 0.05, 0.1, 0.2, 0.5, 1.0]:
        chosen = order[:subset_size(fraction, len(order))]
        assert previous <= set(chosen.tolist())  # nested
        previous = set(chosen.tolist())
        counts = np.array([(subjects[chosen] == p).sum() for p in people])
        assert counts.max() - counts.min() <= 1  # every prefix balanced over subjects
    assert previous == set(pool.tolist())


def test_seeds_draw_different_subsets():
    subjects = subjects_of(10, 50)
    pool, _ = carve_validation(subjects, 0.2, seed=0)
    a = stratified_order(pool, subjects, seed=0)[:40]
    b = stratified_order(pool, subjects, seed=1)[:40]
    assert set(a.tolist()) != set(b.tolist())
    assert np.array_equal(a, stratified_order(pool, subjects, seed=0)[:40])


def test_subset_size_bounds():
    assert subset_size(0.01, 50) == 1  # never empty
    assert subset_size(1.0, 50) == 50
    assert [subset_size(f, 1000) for f in (0.01, 0.1, 0.2)] == [10, 100, 200]
    with pytest.raises(ParamsError):
        subset_size(1.2, 10)
