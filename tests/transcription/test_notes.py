"""Decoders on synthetic posteriorgrams and on real model output for synthetic tones."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from stemscribe.stems import StemType
from stemscribe.transcription.decoding import NETWORK_OFFSET_RATIO, network_decode_options
from stemscribe.transcription.notes import (
    DecodeOptions,
    NoteArrays,
    decode_monophonic,
    decode_polyphonic,
    ends_from_frames,
    to_events,
)
from stemscribe.transcription.pitch_model import Posteriors, frame_times, n_output_frames


def _posteriors(n: int, notes: list[tuple[int, int, int]], *, octave_ghost: bool = False) -> Posteriors:
    note = np.zeros((n, 88), np.float32)
    onset = np.zeros((n, 88), np.float32)
    for pitch, s, e in notes:
        i = pitch - 21
        note[s:e, i] = 0.9
        onset[s, i] = 0.95
        onset[s + 1, i] = 0.6
        if octave_ghost and i + 12 < 88:
            note[s + 2 : s + 4, i + 12] = 0.95  # a short octave-up error inside the note
    return Posteriors(note, onset, np.zeros((n, 264), np.float32))


def test_polyphonic_finds_chords_and_repeats() -> None:
    post = _posteriors(200, [(60, 10, 50), (64, 10, 50), (67, 10, 50), (60, 50, 90)])
    notes = decode_polyphonic(post, np.full(200, 0.5, np.float32), DecodeOptions(infer_onsets=False))
    got = sorted(zip(notes.pitch.tolist(), notes.start.tolist(), notes.end.tolist(), strict=True))
    assert got == [(60, 10, 50), (60, 50, 90), (64, 10, 50), (67, 10, 50)]


def test_polyphonic_respects_range_and_min_length() -> None:
    post = _posteriors(100, [(30, 5, 40), (70, 5, 7), (80, 10, 60)])
    notes = decode_polyphonic(
        post, np.ones(100, np.float32), DecodeOptions(min_pitch=40, max_pitch=90, min_frames=4)
    )
    assert notes.pitch.tolist() == [80]


def test_gaps_are_closed() -> None:
    post = _posteriors(100, [(60, 10, 60)])
    post.note[30, 39] = 0.0  # one-frame dropout
    notes = decode_polyphonic(post, np.ones(100, np.float32), DecodeOptions(gap_frames=2, infer_onsets=False))
    assert notes.end.tolist() == [60]


def test_monophonic_is_one_line_without_octave_jumps() -> None:
    post = _posteriors(300, [(40, 10, 60), (43, 60, 120), (45, 120, 200)], octave_ghost=True)
    post.note[130:140, 64 - 21] = 0.5  # a quieter simultaneous note that a mono line must ignore
    notes = decode_monophonic(post, np.ones(300, np.float32), DecodeOptions(min_pitch=28, max_pitch=67))
    assert notes.pitch.tolist() == [40, 43, 45]
    assert np.all(notes.start[1:] >= notes.end[:-1])


def test_velocities_follow_loudness() -> None:
    post = _posteriors(200, [(60, 10, 50), (62, 100, 140)])
    loud = np.zeros(200, np.float32)
    loud[100:] = 1.0
    notes = decode_polyphonic(post, loud, DecodeOptions(infer_onsets=False))
    assert notes.velocity[1] > notes.velocity[0] + 0.3
    assert np.all((notes.velocity > 0) & (notes.velocity <= 1))


def test_frame_times_follow_the_window_hop() -> None:
    # Frame 142 starts the second window, which begins 36164 samples (not 142 * 256) in.
    assert np.isclose(frame_times([142])[0], 36164 / 22050)
    assert n_output_frames(22050 * 10) == len([f for f in range(2000) if frame_times([f])[0] < 10.0])


def test_events_are_sorted_seconds() -> None:
    post = _posteriors(200, [(64, 60, 90), (60, 10, 50)])
    events = to_events(decode_polyphonic(post, np.ones(200, np.float32)))
    assert [e.pitch for e in events] == [60, 64]
    assert all(e.end > e.start >= 0 for e in events)


def test_model_on_synthetic_tones(signals) -> None:
    """Real model output through basic-pitch's decoders: a C major arpeggio of harmonic tones comes back
    with the right pitches and times. (Engine "auto" ends a piano stem's notes where the network hears
    them end, tuned on rendered pianos, which decay: these steady tones end ~0.2 s early there.)"""
    from stemscribe import Transcriber

    truth = [(60, 0.5, 1.0), (64, 1.0, 1.5), (67, 1.5, 2.0), (72, 2.0, 2.8)]
    transcriber = Transcriber(drums="dsp", engine="basic-pitch")
    result = transcriber.transcribe((signals.melody(truth, 3.5), signals.sr), stem="piano")
    (inst,) = result.instruments
    assert [n.pitch for n in inst.notes] == [60, 64, 67, 72]
    for note, (_, start, end) in zip(inst.notes, truth, strict=True):
        assert abs(note.start - start) < 0.05
        assert abs(note.end - end) < 0.15


def test_slow_attack_start_moves_back_to_the_climb() -> None:
    n = 200
    note = np.zeros((n, 88), np.float32)
    onset = np.zeros((n, 88), np.float32)
    i = 64 - 21
    note[20:40, i] = np.linspace(0.2, 0.29, 20)  # a slow attack: below the frame threshold for 20 frames
    note[40:120, i] = 0.8
    onset[42, i] = 0.7  # the onset head fires late too
    post = Posteriors(note, onset, np.zeros((n, 264), np.float32))
    loud = np.ones(n, np.float32)
    plain = decode_monophonic(post, loud, DecodeOptions(backtrack_frames=24))
    risen = decode_monophonic(post, loud, DecodeOptions(backtrack_frames=24, rise_level=0.2))
    assert plain.start.tolist() == [40]
    assert risen.start.tolist() == [20] and risen.end.tolist() == plain.end.tolist()


def test_a_sung_repeat_splits_where_the_level_swells_again() -> None:
    # One pitch held over 120 frames: the frame posterior never drops and the onset head peaks late
    # at the repeat, but the level sags 12 dB as the first note releases and swells back.
    n = 200
    note = np.zeros((n, 88), np.float32)
    onset = np.zeros((n, 88), np.float32)
    i = 65 - 21
    note[20:140, i] = 0.85
    onset[20, i] = 0.9
    onset[82, i] = 0.55
    post = Posteriors(note, onset, np.zeros((n, 264), np.float32))
    loud = np.zeros(n, np.float32)
    loud[20:140] = 0.6
    loud[74:80] = np.linspace(0.55, 0.4, 6)  # 0.4 * 60 dB: 12 dB under the held level
    loud[80:86] = np.linspace(0.45, 0.6, 6)
    options = DecodeOptions(onset_threshold=0.4, frame_threshold=0.3, reattack_rise=1.3)
    held = decode_monophonic(post, loud, options)
    split = decode_monophonic(post, loud, replace(options, reattack_db=8.0))
    assert held.start.tolist() == [20]
    assert split.pitch.tolist() == [65, 65]
    assert split.start.tolist() == [20, 79] and split.end.tolist() == [79, 140]
    # Vibrato-sized level wobbles (3 dB) do not split it.
    loud[74:86] = 0.6 - 0.05 * np.sin(np.linspace(0, np.pi, 12))
    assert decode_monophonic(post, loud, replace(options, reattack_db=8.0)).start.tolist() == [20]


def test_low_bass_heard_through_its_partials_is_boosted() -> None:
    # A low E (MIDI 28) whose fundamental the model barely hears, with its 2nd and 3rd partials
    # (40 and 47) clear: the boost recovers the E, and a real E2 (40, with 52 and 59) stays an E2.
    n = 200
    note = np.zeros((n, 88), np.float32)
    onset = np.zeros((n, 88), np.float32)
    for pitch, level in ((28, 0.3), (40, 0.38), (47, 0.36)):
        note[20:60, pitch - 21] = level
    onset[20, 28 - 21] = 0.6
    for pitch, level in ((40, 0.8), (52, 0.5), (59, 0.3)):
        note[100:140, pitch - 21] = level
    onset[100, 40 - 21] = 0.9
    post = Posteriors(note, onset, np.zeros((n, 264), np.float32))
    loud = np.ones(n, np.float32)
    options = DecodeOptions(min_pitch=23, max_pitch=67, onset_threshold=0.4, frame_threshold=0.4)
    assert decode_monophonic(post, loud, options).pitch.tolist() == [40]
    boosted = decode_monophonic(post, loud, replace(options, harmonic_boost=0.6))
    assert boosted.pitch.tolist() == [28, 40]
    assert boosted.start.tolist() == [20, 100]


def test_a_strummed_top_string_with_a_low_frame_posterior_opens_on_a_strong_onset() -> None:
    # A strum: 52 and 59 are clear, 66 has a sharp onset but a frame posterior under the threshold,
    # 69 has a weak run with only a middling onset (noise, not a string).
    post = _posteriors(120, [(52, 10, 60), (59, 10, 60)])
    post.note[10:50, 66 - 21] = 0.32
    post.onset[11, 66 - 21] = 0.85
    post.note[10:50, 69 - 21] = 0.32
    post.onset[11, 69 - 21] = 0.6
    loud = np.ones(120, np.float32)
    options = DecodeOptions(frame_threshold=0.45, infer_onsets=False)
    assert decode_polyphonic(post, loud, options).pitch.tolist() == [52, 59]
    strummed = decode_polyphonic(post, loud, replace(options, strong_onset=0.8))
    assert strummed.pitch.tolist() == [52, 59, 66]
    assert strummed.start[2] == 11 and strummed.end[2] == 50


def test_pairs_within_matches_brute_force() -> None:
    from stemscribe.transcription.notes import pairs_within

    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 500, 300), rng.integers(0, 500, 200)
    i, j = pairs_within(a, b, 3)
    brute = {(x, y) for x in range(a.size) for y in range(b.size) if abs(int(a[x]) - int(b[y])) <= 3}
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == brute and len(i) == len(brute)


def test_network_notes_end_where_their_posterior_falls_below_the_stems_share_of_its_peak() -> None:
    # 0.9 for 20 frames, then a release tail at 0.5 (still above the frame threshold) for 20 more.
    post = _posteriors(100, [(60, 10, 30)])
    post.note[30:50, 60 - 21] = 0.5
    loud = np.ones(100, np.float32)
    piano = decode_polyphonic(post, loud, network_decode_options(StemType.PIANO, 0.5, 0.3))
    bass = decode_polyphonic(post, loud, network_decode_options(StemType.BASS, 0.5, 0.3))
    plain = decode_polyphonic(post, loud, DecodeOptions(onset_threshold=0.5, frame_threshold=0.3))
    assert NETWORK_OFFSET_RATIO[StemType.PIANO] * 0.9 > 0.5 > NETWORK_OFFSET_RATIO[StemType.BASS] * 0.9
    assert piano.end.tolist() == [30] and bass.end.tolist() == [50] and plain.end.tolist() == [50]
    # every audio the network decodes has its share: a mix and each pitched stem type
    assert set(NETWORK_OFFSET_RATIO) == set(StemType) - {StemType.AUTO, StemType.DRUMS}


def _arrays(notes: list[tuple[int, int, int]]) -> NoteArrays:
    """(pitch, start, end) rows as NoteArrays."""
    pitch, start, end = (np.array(col, np.int64) for col in zip(*notes, strict=True))
    return NoteArrays(start, end, pitch, np.full(len(notes), 0.5, np.float32))


def test_notes_of_another_decoder_end_where_the_frame_posterior_hears_them_end() -> None:
    frame = np.zeros((200, 88), np.float32)
    frame[12:60, 60 - 21] = 0.9  # heard two frames after the note's start, until frame 60
    frame[60:90, 60 - 21] = 0.35  # a release tail above the threshold
    notes = _arrays([(60, 10, 30), (64, 100, 120)])  # 64: the posterior never hears it
    plain = ends_from_frames(frame, notes, DecodeOptions(frame_threshold=0.3))
    tails = ends_from_frames(frame, notes, DecodeOptions(frame_threshold=0.3, offset_ratio=0.5))
    assert plain.end.tolist() == [90, 120] and tails.end.tolist() == [60, 120]
    assert plain.start.tolist() == [10, 100] and plain.pitch.tolist() == [60, 64]


def test_ends_from_frames_never_run_past_the_next_note_at_the_pitch_or_of_a_line() -> None:
    frame = np.zeros((200, 88), np.float32)
    frame[10:100, 60 - 21] = 0.9
    frame[10:100, 62 - 21] = 0.9
    repeat = _arrays([(60, 10, 20), (60, 50, 70)])
    assert ends_from_frames(frame, repeat, DecodeOptions()).end.tolist() == [50, 100]
    line = _arrays([(60, 10, 20), (62, 40, 60)])
    assert ends_from_frames(frame, line, DecodeOptions()).end.tolist() == [100, 100]
    assert ends_from_frames(frame, line, DecodeOptions(), line=True).end.tolist() == [40, 100]
