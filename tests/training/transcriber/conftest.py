"""The timbre tests' basic-pitch model, loaded once per module (see judge.heard)."""

from __future__ import annotations

import pytest

from stemscribe.transcription.pitch_model import PitchModel


@pytest.fixture(scope="module")
def pitch() -> PitchModel:
    return PitchModel(threads=1)
