"""Composed scores as training material: no Bach, windows that keep the score's notes, families that
play in each voice's range, and clips whose labels are what was rendered."""

from __future__ import annotations

import numpy as np
import pytest

from stemscribe.stems import Family
from tests.training.transcriber.judge import record_note_ons
from training.timbre.data import RANGES
from training.transcriber import scores as sc

SR = 22050
# Three voices of quarter and half notes over 16 quarters: soprano, alto, bass.
RECORD = {
    "id": "test/three-voices",
    "voices": [
        [(float(q), float(q + 1), 72 + (q % 5)) for q in range(16)],
        [(float(q), float(q + 2), 64 + (q % 3)) for q in range(0, 16, 2)],
        [(float(q), float(q + 2), 43 + (q % 4)) for q in range(0, 16, 2)],
    ],
    "length": 16.0,
}


def test_only_listed_composers_and_never_bach_are_trained_on() -> None:
    assert sc.is_training_score("/x/music21/corpus/palestrina/Agnus_01.krn")
    assert sc.is_training_score("/x/music21/corpus/beethoven/opus18no1/movement1.mxl")
    assert not sc.is_training_score("/x/music21/corpus/bach/bwv66.6.mxl")
    assert not sc.is_training_score("/x/music21/corpus/cpebach/h186.mxl")
    assert not sc.is_training_score("/x/music21/corpus/ryansMammoth/Jig.abc")  # one line: not read
    assert not sc.is_training_score("/x/music21/corpus/monteverdi/madrigal.3.1.rntxt")  # an analysis
    corpus = pytest.importorskip("music21.corpus", reason="music21 (the score extra) lists the corpus")
    kept = [str(p) for p in corpus.getPaths() if sc.is_training_score(str(p))]
    assert kept and not [p for p in kept if "bach" in p.lower()]


def test_a_window_keeps_the_scores_notes_at_one_tempo_and_transposition() -> None:
    for seed in range(20):
        rng = np.random.default_rng(seed)
        voices, quarter = sc.score_voices(rng, RECORD, 4.0)
        assert sc.QUARTER_SECONDS[0] <= quarter <= sc.QUARTER_SECONDS[1]
        assert voices and len(voices) <= 3
        for notes in voices:
            starts = np.array([s for s, _, _, _ in notes])
            assert np.all(starts >= 0) and np.all(starts < 4.0)
            assert all(e <= 4.0 and e > s for s, e, _, _ in notes)
            assert all(20 <= v <= 127 for _, _, _, v in notes)
            # consecutive onsets a whole number of quarters apart, as written
            steps = np.diff(starts) / quarter
            assert np.allclose(steps, np.round(steps), atol=1e-4)
        # one transposition of the written pitches for all voices, within +-TRANSPOSE
        assert len(voices) == 3
        shifts = set(range(-sc.TRANSPOSE, sc.TRANSPOSE + 1))
        for notes, written in zip(voices, RECORD["voices"], strict=True):
            pitches = {p for _, _, p in written}
            shifts &= {
                k
                for k in range(-sc.TRANSPOSE, sc.TRANSPOSE + 1)
                if all(p - k in pitches for _, _, p, _ in notes)
            }
        assert shifts


def test_each_voice_gets_a_family_that_plays_in_its_range() -> None:
    voices, _ = sc.score_voices(np.random.default_rng(0), {**RECORD, "length": 4.0}, 8.0)
    medians = [float(np.median([p for _, _, p, _ in v])) for v in voices]
    lowest = int(np.argmin(medians))
    consorts = 0
    for seed in range(40):
        families = sc.voice_families(np.random.default_rng(seed), voices)
        assert len(families) == len(voices)
        for k, (family, median) in enumerate(zip(families, medians, strict=True)):
            lo, hi = RANGES[family]
            assert lo <= median <= hi
            assert family is not Family.BASS or k == lowest
        consorts += len(set(families)) == 1
    assert 0 < consorts < 40


@pytest.mark.slow
def test_score_clips_label_what_is_rendered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mixes and stems from a score: every labelled note is a note-on the synth played, and the mix's
    notes are the window's voices."""
    pytest.importorskip("tinysoundfont")
    from training.drums.data import Renderer
    from training.timbre import data as timbre_data
    from training.transcriber import data as tdata
    from training.verify import data as verify_data

    fonts = [p for p in tdata.TRAIN_FONTS if p.is_file()]
    if not fonts:
        pytest.skip("no training SoundFont installed (Debian timgm6mb-soundfont)")
    monkeypatch.setattr(timbre_data, "SCORE_SHARE", 1.0)
    monkeypatch.setattr(verify_data, "SCORE_STEM_SHARE", 1.0)
    renderer = Renderer(tuple(fonts[-1:]))
    played = record_note_ons(renderer)
    written = {p + shift for v in RECORD["voices"] for _, _, p in v for shift in range(-5, 6)}
    kinds = set()
    for seed in range(6):
        played.clear()
        audio, notes, kind = tdata.make_clip(np.random.default_rng(seed), renderer, [], {}, 0.0, [RECORD])
        kinds.add(kind)
        assert audio.dtype == np.float32 and notes
        assert sorted((round(s, 6), int(p)) for s, _, p, _, _ in notes) == sorted(played)
        assert {int(p) for _, _, p, _, _ in notes} <= written
    assert kinds & {0, 1} and 2 in kinds
