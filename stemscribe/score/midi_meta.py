"""The analysis as MIDI meta events: time signature (a partial first bar for a pickup), key, chord names.

Three forms: `conductor_meta` for `stemscribe.midi.build_midi` (what `Result.write_midi` writes: the
conductor track's time and key signatures and one marker per chord, with 720 ticks per beat in compound
metres); `add_meta_events` for a pretty_midi.PrettyMIDI (times in seconds; chords as text events); and
`add_meta_messages`, which puts them on the conductor track of a `build_midi` file made without them.

In a compound metre the grid's beat is a dotted quarter; a .mid whose tempo map puts each beat on a
quarter note shows 6/8 bars of the wrong length in a DAW, so `conductor_meta` asks for
TICKS_PER_BEAT * 3 // 2 ticks per beat (`add_meta_messages` cannot change a written file's tempo map).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stemscribe.midi import TICKS_PER_BEAT, ConductorMeta
from stemscribe.score.analysis import MAJOR_TONICS, MINOR_TONICS, ScoreAnalysis

if TYPE_CHECKING:
    import mido
    import pretty_midi

    from stemscribe.result import Result


def _signatures(analysis: ScoreAnalysis) -> list[tuple[float, int, int]]:
    """(time in seconds, numerator, denominator): a pickup's partial bar first, when there is one."""
    sig = analysis.time_signature
    out = []
    pickup = analysis.first_downbeat
    if pickup:
        unit = 3 if sig.compound else 1  # grid beats -> notated beats of the denominator
        out.append((0.0, pickup * unit, sig.denominator))
    start = analysis.beats[pickup] if pickup else 0.0
    out.append((float(start), sig.numerator, sig.denominator))
    return out


def mido_key(analysis: ScoreAnalysis) -> str | None:
    """The key as mido's key_signature names it ("F#m", "Bb"), or None."""
    if analysis.key is None:
        return None
    if analysis.key.mode == "major":
        return MAJOR_TONICS[analysis.key.tonic]
    return MINOR_TONICS[analysis.key.tonic] + "m"


def conductor_meta(analysis: ScoreAnalysis) -> ConductorMeta:
    """What `build_midi` puts on the conductor track for this analysis."""
    compound = analysis.time_signature.compound
    return ConductorMeta(
        time_signatures=tuple(_signatures(analysis)),
        key=mido_key(analysis),
        markers=tuple((float(c.start), c.symbol) for c in analysis.chords),
        beat_ticks=TICKS_PER_BEAT * 3 // 2 if compound else TICKS_PER_BEAT,
    )


def add_meta_events(pm: pretty_midi.PrettyMIDI, analysis: ScoreAnalysis) -> None:
    """Replace the time and key signatures of `pm` with the analysis's, and add one text event per chord."""
    import pretty_midi

    pm.time_signature_changes = [pretty_midi.TimeSignature(n, d, t) for t, n, d in _signatures(analysis)]
    if analysis.key is not None:
        number = analysis.key.tonic + (12 if analysis.key.mode == "minor" else 0)
        pm.key_signature_changes = [pretty_midi.KeySignature(number, 0.0)]
    pm.text_events = [e for e in pm.text_events if not e.text.startswith("chord:")]
    pm.text_events.extend(pretty_midi.Text(f"chord:{c.symbol}", float(c.start)) for c in analysis.chords)
    pm.text_events.sort(key=lambda e: e.time)


def add_meta_messages(midi: mido.MidiFile, analysis: ScoreAnalysis, result: Result) -> None:
    """Put the analysis on the conductor track (track 0) of a `build_midi` file, in place: its time
    signature replaces the one there, then the key signature and one marker per chord."""
    import mido

    from stemscribe.midi import tempo_knots, to_ticks

    knots = tempo_knots(list(result.beats), result.tempo, result.duration)
    conductor = midi.tracks[0]
    absolute: list[tuple[int, int, mido.MetaMessage]] = []
    tick = 0
    for order, msg in enumerate(conductor):
        tick += msg.time
        if msg.type not in ("time_signature", "key_signature", "marker", "end_of_track"):
            absolute.append((tick, order, msg))
    end = tick
    extra: list[tuple[float, mido.MetaMessage]] = [
        (t, mido.MetaMessage("time_signature", numerator=n, denominator=d))
        for t, n, d in _signatures(analysis)
    ]
    key = mido_key(analysis)
    if key is not None:
        extra.append((0.0, mido.MetaMessage("key_signature", key=key)))
    extra.extend((c.start, mido.MetaMessage("marker", text=c.symbol)) for c in analysis.chords)
    if extra:
        ticks = to_ticks([t for t, _ in extra], knots).tolist()
        base = len(conductor)
        absolute.extend(
            (int(k), base + i, msg) for i, (k, (_, msg)) in enumerate(zip(ticks, extra, strict=True))
        )
    absolute.sort(key=lambda e: (e[0], e[1]))
    conductor.clear()
    last = 0
    for tick, _, msg in absolute:
        conductor.append(msg.copy(time=tick - last))
        last = tick
    conductor.append(mido.MetaMessage("end_of_track", time=max(end - last, 0)))
