from __future__ import annotations

import numpy as np

from stemscribe.result import Instrument, NoteEvent
from stemscribe.stems import Family
from stemscribe.transcription.tempo import (
    BeatOptions,
    _bar_consistent_tempo,
    dp_beats,
    harmonic_bar_period,
    onset_envelope,
    track_beats,
)

SR = 22050


def _burst(x: np.ndarray, t: float, level: float, rng: np.random.Generator) -> None:
    i = int(t * SR)
    burst = rng.normal(0, level, 300).astype(np.float32) * np.exp(-np.arange(300) / 60)
    x[i : i + 300] += burst[: x.size - i]


def _clicks(bpm: float, seconds: float, offset: float = 0.25) -> np.ndarray:
    x = np.zeros(int(seconds * SR), np.float32)
    rng = np.random.default_rng(0)
    for t in np.arange(offset, seconds, 60.0 / bpm):
        _burst(x, t, 0.5, rng)
    return x


def _pulse(
    bpm: float, seconds: float, on: float, off: float, seed: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """(period, beat times, audio): a burst of level `on` on every beat and of `off` half a beat later."""
    period = 60.0 / bpm
    beats = np.arange(0.5, seconds - 0.5, period)
    x = np.zeros(int(seconds * SR), np.float32)
    rng = np.random.default_rng(seed)
    for b in beats:
        _burst(x, b, on, rng)
        _burst(x, b + period / 2, off, rng)
    return period, beats, x


def _hits(beats: np.ndarray, truth: np.ndarray, tolerance: float = 0.03) -> int:
    return sum(bool(np.min(np.abs(truth - b)) < tolerance) for b in beats)


def test_click_track_tempo_and_beats() -> None:
    for bpm in (90.0, 120.0, 150.0):
        grid = track_beats(_clicks(bpm, 12.0))
        assert abs(grid.tempo - bpm) < 2.0, (bpm, grid.tempo)
        period = 60.0 / bpm
        truth = np.arange(0.25, 12.0, period)
        assert _hits(grid.beats, truth) >= 0.8 * truth.size


def test_no_pulse_no_beats() -> None:
    grid = track_beats(np.zeros(SR * 6, np.float32))
    assert grid.beats.size == 0


def test_beats_follow_an_accelerating_performance() -> None:
    # 100 BPM speeding up to 125 over 20 s: one period cannot hold, the beats must bend with it.
    x = np.zeros(SR * 21, np.float32)
    rng = np.random.default_rng(1)
    truth, t = [], 0.3
    while t < 20.5:
        truth.append(t)
        _burst(x, t, 0.5, rng)
        t += 60.0 / (100.0 + 25.0 * t / 20.0)
    grid = track_beats(x)
    inside = np.array(truth)
    assert _hits(grid.beats, inside) >= 0.9 * inside.size
    assert 100 < grid.tempo < 125


def test_kick_and_bass_notes_tell_the_beat_from_a_louder_off_beat() -> None:
    # Ska-like: loud chops on the off-beats, soft thumps on the beats. The audio alone is ambiguous at
    # best; the transcribed kicks and bass notes on the beats settle it.
    bpm = 100.0
    period, beats, x = _pulse(bpm, 16.0, 0.08, 0.6, seed=2)
    kit = Instrument("Drums", 0, True, Family.DRUMS, [NoteEvent(36, b, b + 0.1, 0.8) for b in beats])
    bass = Instrument(
        "Electric Bass (finger)", 33, False, Family.BASS, [NoteEvent(40, b, b + 0.4, 0.7) for b in beats]
    )
    chops = Instrument(
        "Electric Guitar (clean)",
        27,
        False,
        Family.GUITAR,
        [NoteEvent(p, b + period / 2, b + period / 2 + 0.1, 0.9) for b in beats for p in (52, 56, 59)],
    )
    grid = track_beats(x, [kit, bass, chops])
    assert abs(grid.tempo - bpm) < 2.0
    assert _hits(grid.beats, beats, 0.05) >= 0.9 * beats.size


def test_dp_beats_pick_the_strong_phase() -> None:
    period = 40.0
    env = np.zeros(2000)
    env[10::40] = 1.0  # weak pulses
    env[30::40] = 3.0  # strong ones, half a period later
    beats = dp_beats(env, period)
    assert np.all(beats % 40 == 30)
    assert np.all(np.diff(beats) == 40)


def test_an_envelope_made_beforehand_gives_the_same_grid() -> None:
    x = _clicks(120.0, 8.0)
    grid = track_beats(x)
    again = track_beats(x, envelope=onset_envelope(x))
    assert again.tempo == grid.tempo and np.array_equal(again.beats, grid.beats)


def test_the_harmony_tells_the_beat_from_the_off_beat() -> None:
    # Onsets on every half beat, the off-beats a little louder, every chord struck twice: the onsets
    # alone put the beats on the off-beats. The chords change on the beats, and that settles it.
    bpm = 110.0
    period, beats, x = _pulse(bpm, 16.0, 0.5, 0.6, seed=3)
    chords = ((60, 64, 67), (62, 65, 69), (64, 67, 71), (65, 69, 72))  # C Dm Em F, one per beat
    notes = [
        NoteEvent(p, t, t + period / 2, 0.7)
        for k, b in enumerate(beats)
        for t in (b, b + period / 2)
        for p in chords[k % 4]
    ]
    keys = Instrument("Electric Piano 1", 4, False, Family.KEYS, notes)
    plain = track_beats(x)
    assert _hits(plain.beats, beats + period / 2, 0.05) >= 0.9 * beats.size  # the onsets alone: off-beats
    grid = track_beats(x, [keys])
    assert abs(grid.tempo - bpm) < 2.0
    assert _hits(grid.beats, beats, 0.05) >= 0.9 * beats.size


def _chords_every(seconds: float, bar: float) -> Instrument:
    chords = ((60, 64, 67), (57, 60, 64), (65, 69, 72), (67, 71, 74))  # C Am F G
    notes = [
        NoteEvent(p, t, t + bar, 0.7)
        for k, t in enumerate(np.arange(0.0, seconds - bar, bar))
        for p in chords[k % 4]
    ]
    return Instrument("String Ensemble 1", 48, False, Family.STRINGS, notes)


def test_the_harmony_s_bar_period() -> None:
    period, strength = harmonic_bar_period([_chords_every(30.0, 2.0)], 30.0)
    assert abs(period - 2.0) < 0.05 and strength > 0.5
    assert harmonic_bar_period([], 30.0) == (0.0, 0.0)


def test_a_tempo_whose_beats_do_not_fill_the_bar_gives_way() -> None:
    # Clicks at 120 BPM and a chord every 2 s (a 4/4 bar): 80 BPM (a 3-3-2 reading) puts 2.67 beats in
    # the bar, so the related tempo that fills it whole, and that the clicks fit best, takes over.
    x = _clicks(120.0, 30.0)
    env = onset_envelope(x)
    strings = [_chords_every(30.0, 2.0)]
    assert abs(_bar_consistent_tempo(80.0, env, strings, BeatOptions()) - 120.0) < 0.01
    assert _bar_consistent_tempo(120.0, env, strings, BeatOptions()) == 120.0
    assert _bar_consistent_tempo(80.0, env, [], BeatOptions()) == 80.0  # no harmony: nothing to check
