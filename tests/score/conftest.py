"""Results built by hand for the score tests: scales, progressions in 3/4, 4/4 and 6/8, drums, nothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from stemscribe.result import Instrument, NoteEvent, Result
from stemscribe.stems import Family, family_of_program

DATA = Path(__file__).resolve().parents[2] / "stemscribe" / "data"

# Triads as (root, third, fifth) MIDI pitches around middle C.
C, F, G, AM, DM, EM = (60, 64, 67), (60, 65, 69), (59, 62, 67), (57, 60, 64), (57, 62, 65), (59, 64, 67)


def instrument(
    name: str, program: int, notes: Sequence[tuple[int, float, float]], *, drum: bool = False
) -> Instrument:
    family = family_of_program(program, is_drum=drum)
    events = [NoteEvent(p, s, e, 0.8) for p, s, e in sorted(notes, key=lambda n: (n[1], n[0]))]
    return Instrument(name, program, drum, family, events)


def grid(n_beats: int, period: float, start: float = 0.0) -> list[float]:
    return [round(start + i * period, 6) for i in range(n_beats)]


def progression_song(
    chords: Sequence[tuple[int, int, int]],
    bass_roots: Sequence[int],
    *,
    beats_per_bar: int,
    period: float = 0.5,
    bars: int | None = None,
    drums: bool = True,
    melody: Sequence[int] = (),
) -> Result:
    """One chord per bar (repeated to `bars`): a piano chord on every beat, the bass on beat 1 (long)
    and a fifth on the others, kick on 1 and snare on the other beats, an optional melody of quarters."""
    bars = bars or len(chords)
    piano, bass, kit, lead = [], [], [], []
    for b in range(bars):
        chord, root = chords[b % len(chords)], bass_roots[b % len(bass_roots)]
        t0 = b * beats_per_bar * period
        for k in range(beats_per_bar):
            t = t0 + k * period
            piano += [(p, t, t + 0.9 * period) for p in chord]
            if k == 0:
                bass.append((root, t, t + 0.95 * period * min(2, beats_per_bar)))
            elif k >= 2:
                bass.append((root + 7, t, t + 0.9 * period))
            kit.append((36 if k == 0 else 38, t, t + 0.1))
            kit.append((42, t, t + 0.05))
            if melody:
                lead.append((melody[(b * beats_per_bar + k) % len(melody)], t, t + 0.95 * period))
    insts = [instrument("Piano", 0, piano), instrument("Bass", 33, bass)]
    if melody:
        insts.insert(0, instrument("Flute", 73, lead))
    if drums:
        insts.append(instrument("Drums", 0, kit, drum=True))
    n_beats = bars * beats_per_bar
    return Result(insts, n_beats * period, "mix", 60.0 / period, grid(n_beats, period))


@pytest.fixture
def c_major_scale() -> Result:
    """C major up and down in quarters at 120 BPM, over a C-G bass, 4/4."""
    pitches = [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62, 60, 60]
    lead = [(p, i * 0.5, i * 0.5 + 0.45) for i, p in enumerate(pitches)]
    bass = [(48, 0.0, 1.9), (43, 2.0, 3.9), (48, 4.0, 5.9), (48, 6.0, 7.9)]
    return Result(
        [instrument("Flute", 73, lead), instrument("Bass", 33, bass)], 8.0, "mix", 120.0, grid(16, 0.5)
    )


@pytest.fixture
def waltz() -> Result:
    """I-IV-V-I in C, 3/4, with a bass: 8 bars, 150 BPM."""
    return progression_song([C, F, G, C], [48, 53, 43, 48], beats_per_bar=3, period=0.4, bars=8)


@pytest.fixture
def pop_in_a_minor() -> Result:
    """Am-Dm-Em-Am (i-iv-v-i) in 4/4 with a melody on the A minor scale, 8 bars."""
    melody = [69, 72, 71, 69, 65, 69, 67, 64, 64, 67, 71, 69, 69, 72, 76, 69]
    return progression_song([AM, DM, EM, AM], [45, 50, 52, 45], beats_per_bar=4, bars=8, melody=melody)


@pytest.fixture
def six_eight() -> Result:
    """C G/B Am F/C C in 6/8 at 60 dotted quarters a minute: arpeggiated eighths, bass and kick on 1,
    snare on 2."""
    period = 1.0
    eighth = period / 3
    piano, bass, kit = [], [], []
    chords = [C, G, AM, F]
    for b in range(9):
        t0 = b * 2 * period
        chord = chords[b % 4]  # the ninth bar is C again
        for k in range(6):
            t = t0 + k * eighth
            piano.append((chord[k % 3] + 12, t, t + 0.9 * eighth))
        bass.append((chord[0] - 24, t0, t0 + 1.5 * period))
        kit += [(36, t0, t0 + 0.1), (38, t0 + period, t0 + period + 0.1)]
        kit += [(42, t0 + k * eighth, t0 + k * eighth + 0.05) for k in range(6)]
    insts = [
        instrument("Piano", 0, piano),
        instrument("Bass", 33, bass),
        instrument("Drums", 0, kit, drum=True),
    ]
    return Result(insts, 18.0, "mix", 60.0, grid(18, period))


@pytest.fixture
def drums_only() -> Result:
    """A rock beat alone: kick on 1 and 3, snare on 2 and 4, eighth hi-hats; 4 bars at 100 BPM."""
    period = 0.6
    kit = []
    for i in range(16):
        t = i * period
        kit.append((36 if i % 2 == 0 else 38, t, t + 0.1))
        kit += [(42, t, t + 0.05), (42, t + period / 2, t + period / 2 + 0.05)]
    kit.append((49, 0.0, 0.2))
    return Result([instrument("Drums", 0, kit, drum=True)], 16 * period, "mix", 100.0, grid(16, period))


@pytest.fixture
def empty_result() -> Result:
    return Result([], 5.0, "mix", 120.0, grid(10, 0.5))


@pytest.fixture
def example_result() -> Result:
    """The bundled example's reference MIDI (stemscribe/data/example.mid) as a Result, with its beats."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(DATA / "example.mid"))
    insts = []
    for inst in pm.instruments:
        family = Family.DRUMS if inst.is_drum else family_of_program(inst.program)
        notes = [NoteEvent(int(n.pitch), float(n.start), float(n.end), n.velocity / 127) for n in inst.notes]
        insts.append(Instrument(inst.name, int(inst.program), bool(inst.is_drum), family, notes))
    beats = [float(b) for b in pm.get_beats()]
    return Result(insts, float(pm.get_end_time()), "mix", 120.0, beats)
