"""The training run's schedules: shards coming in and the learning rate's decay."""

from __future__ import annotations

import pytest

from training.transcriber.train import FIRST_SHARDS, learning_rate, shards_for_step


def test_learning_rate_is_constant_without_a_decay() -> None:
    assert {learning_rate(s, 4e-4, 0, 100, 4e-5) for s in (1, 50, 100, 500)} == {4e-4}


def test_learning_rate_decays_by_half_a_cosine_to_its_end() -> None:
    lrs = [learning_rate(s, 4e-4, 1000, 3000, 4e-5) for s in range(900, 3201, 50)]
    assert lrs[0] == pytest.approx(4e-4) and learning_rate(1000, 4e-4, 1000, 3000, 4e-5) == 4e-4
    assert learning_rate(2000, 4e-4, 1000, 3000, 4e-5) == pytest.approx(2.2e-4)
    assert learning_rate(3000, 4e-4, 1000, 3000, 4e-5) == pytest.approx(4e-5)
    assert lrs[-1] == pytest.approx(4e-5)  # past the end it stays there
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_shards_come_in_one_per_period_from_the_base_step() -> None:
    assert shards_for_step(0, 40, 100) == FIRST_SHARDS
    assert shards_for_step(250, 40, 100) == FIRST_SHARDS + 2
    assert shards_for_step(8900, 40, 50, base_step=8831) == FIRST_SHARDS + 1
    assert shards_for_step(10**6, 40, 50) == 40
