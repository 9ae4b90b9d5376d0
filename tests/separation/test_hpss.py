from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import grey_opening as scipy_opening

from stemscribe.audio import Audio
from stemscribe.separation.hpss import HPSSSeparator, grey_opening


@pytest.mark.parametrize("shape", [(257, 300), (5, 3), (40, 1), (1, 40)])
@pytest.mark.parametrize("size", [1, 3, 9, 11])
@pytest.mark.parametrize("axis", [0, 1])
def test_opening_is_scipys(shape: tuple[int, int], size: int, axis: int) -> None:
    x = (np.random.default_rng(0).random(shape, dtype=np.float32) ** 3).astype(np.float32)
    sizes = tuple(size if a == axis else 1 for a in range(2))
    got = grey_opening(x, size, axis)
    assert got.dtype == np.float32
    assert np.array_equal(got, scipy_opening(x, size=sizes, mode="nearest"))


def test_opening_wants_an_odd_size() -> None:
    with pytest.raises(ValueError):
        grey_opening(np.zeros((4, 4), np.float32), 4, 0)


def test_harmonic_mask_is_the_first_mask_and_parts_sum_back() -> None:
    rng = np.random.default_rng(1)
    sep = HPSSSeparator()
    mag = rng.random((1025, 200), dtype=np.float32)
    assert np.array_equal(sep.harmonic_mask(mag), sep.masks(mag)[0])
    x = rng.standard_normal(22050 * 2).astype(np.float32) * 0.1
    parts = sep.separate(Audio(x, 22050))
    assert np.allclose(parts["drums"].samples + parts["harmonic"].samples, x, atol=1e-6)
