from __future__ import annotations

import numpy as np
import pytest

from stemscribe.transcription.pitch_model import PitchModel, n_output_frames

SR = 22050


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    t = np.arange(int(SR * 9.5)) / SR  # 5 windows: more batches than workers
    return (0.3 * np.sin(2 * np.pi * 220.0 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))).astype(np.float32)


def test_posteriors_do_not_depend_on_workers_or_batches(audio: np.ndarray) -> None:
    one = PitchModel(threads=1).run(audio, batch=4)
    two = PitchModel(threads=2)
    assert two.workers == 2
    for batch in (1, 4):
        other = two.run(audio, batch=batch)
        for name in ("note", "onset", "contour"):
            assert np.array_equal(getattr(one, name), getattr(other, name)), (name, batch)
    assert one.n_frames == n_output_frames(len(audio))


def test_no_contour_keeps_no_contour(audio: np.ndarray) -> None:
    post = PitchModel(threads=2).run(audio, contour=False)
    assert post.contour.shape == (post.n_frames, 0)
    assert post.note.shape == (post.n_frames, 88)


def test_a_damaged_graph_is_refused(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from stemscribe.errors import ModelError
    from stemscribe.transcription.pitch_model import SHIPPED
    from stemscribe.transcription.weights import shipped_weights

    shipped = shipped_weights(SHIPPED)
    copy = tmp_path / SHIPPED
    copy.write_bytes(shipped.read_bytes())
    monkeypatch.setenv("STEMSCRIBE_BASIC_PITCH_MODEL", str(copy))
    assert PitchModel(threads=1).path == copy  # the shipped graph, moved, is accepted
    data = bytearray(shipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        PitchModel(threads=1)
