"""Write a Result as a Standard MIDI File: one track per instrument, GM programs, the tempo map.

The conductor track also carries what `ConductorMeta` holds: time signatures, the key signature and one
marker per chord symbol (`stemscribe.score.midi_meta.conductor_meta` makes one from the score analysis;
`Result.write_midi` passes it). In a compound metre the beat grid's beat is a dotted quarter, so each
beat spans `TICKS_PER_BEAT * 3 // 2` ticks and a DAW shows bars of the right length.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import mido

    from stemscribe.result import Result

TICKS_PER_BEAT = 480
GRID_TICKS = TICKS_PER_BEAT // 4  # quantise to sixteenth notes
DRUM_CHANNEL = 9
BEND_RANGE = 2.0  # semitones, the General MIDI default


@dataclass(frozen=True, slots=True)
class ConductorMeta:
    """The conductor track beyond the tempo map; times in seconds.

    `time_signatures` are (time, numerator, denominator); `key` is mido's key name ("F#m", "Bb");
    `markers` are (time, text); `beat_ticks` is the length of one beat of the grid in ticks (720 for
    the dotted-quarter beat of 6/8, 12/8, ...).
    """

    time_signatures: tuple[tuple[float, int, int], ...] = ((0.0, 4, 4),)
    key: str | None = None
    markers: tuple[tuple[float, str], ...] = ()
    beat_ticks: int = TICKS_PER_BEAT


def tempo_knots(
    beats: list[float], tempo: float, duration: float, *, beat_ticks: int = TICKS_PER_BEAT
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(times, ticks) knots of the piecewise-linear seconds-to-ticks map the tempo map encodes.

    Every beat lands on a multiple of `beat_ticks`, so notes keep their true times while the
    DAW's grid follows the music. Without beats, a constant tempo.
    """
    b = np.asarray(beats, dtype=np.float64)
    if b.size < 2:
        period = 60.0 / (tempo if tempo > 0 else 120.0)
        end = max(duration, period)
        return np.array([0.0, end]), np.array([0.0, end / period * beat_ticks])
    first_period = b[1] - b[0]
    # Beats in the lead-in before the first tracked one: a lead-in a little longer than a whole number
    # of beats is that many slightly slow beats (a tracker that misses the beat at 0 s leaves one just
    # over a beat long), not one more very fast one; a first beat within a quarter beat of 0 s is beat 0
    # itself (the first beat a little slow), not a beat of a few milliseconds before it.
    lead = max(0, int(np.ceil(b[0] / first_period - 0.25)))
    if lead == 0:
        b = np.concatenate([[0.0], b[1:]])
    times = b if lead == 0 else np.concatenate([[0.0], b])
    ticks = (np.arange(b.size) + lead) * float(beat_ticks)
    if lead:
        ticks = np.concatenate([[0.0], ticks])
    last_period = b[-1] - b[-2]
    tail = max(duration, b[-1]) + last_period
    times = np.concatenate([times, [tail]])
    ticks = np.concatenate([ticks, [ticks[-1] + (tail - b[-1]) / last_period * beat_ticks]])
    return cast(npt.NDArray[np.float64], times), cast(npt.NDArray[np.float64], ticks)


def to_ticks(
    seconds: npt.ArrayLike, knots: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
) -> npt.NDArray[np.int64]:
    """Seconds to ticks through the tempo map, extrapolating past the last knot at the last tempo."""
    times, ticks = knots
    s = np.asarray(seconds, dtype=np.float64)
    inside = np.interp(s, times, ticks)
    slope = (ticks[-1] - ticks[-2]) / (times[-1] - times[-2])
    out = np.where(s > times[-1], ticks[-1] + (s - times[-1]) * slope, inside)
    return np.rint(out).astype(np.int64)


def _conductor(
    meta: ConductorMeta, knots: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
) -> mido.MidiTrack:
    """The conductor track: its name, the tempo map, then `meta`'s events in time order."""
    import mido

    times, ticks = knots
    events: list[tuple[int, int, mido.MetaMessage]] = []  # (tick, order, message)
    for i in range(len(times) - 1):
        dt, dk = times[i + 1] - times[i], ticks[i + 1] - ticks[i]
        if dk <= 0:
            continue
        us_per_quarter = min(max(int(round(dt / dk * TICKS_PER_BEAT * 1e6)), 1), 0xFFFFFF)
        events.append((int(round(ticks[i])), 2, mido.MetaMessage("set_tempo", tempo=us_per_quarter)))
    timed: list[tuple[float, int, mido.MetaMessage]] = [
        (t, 0, mido.MetaMessage("time_signature", numerator=n, denominator=d))
        for t, n, d in meta.time_signatures
    ]
    if meta.key is not None:
        timed.append((0.0, 1, mido.MetaMessage("key_signature", key=meta.key)))
    timed.extend((t, 3, mido.MetaMessage("marker", text=text)) for t, text in meta.markers)
    if timed:
        at = to_ticks([t for t, _, _ in timed], knots).tolist()
        events.extend((max(int(k), 0), order, msg) for k, (_, order, msg) in zip(at, timed, strict=True))
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name="stemscribe", time=0))
    last = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - last))
        last = tick
    return track


def build_midi(result: Result, *, quantize: bool = False, meta: ConductorMeta | None = None) -> mido.MidiFile:
    """A type-1 MidiFile: a conductor track with the tempo map (and `meta`'s time and key signatures and
    chord markers; without it 4/4), then one track per instrument."""
    import mido

    meta = meta or ConductorMeta()
    knots = tempo_knots(result.beats, result.tempo, result.duration, beat_ticks=meta.beat_ticks)
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(_conductor(meta, knots))

    channels = [c for c in range(16) if c != DRUM_CHANNEL]
    melodic = 0
    for inst in result.instruments:
        if inst.is_drum:
            channel = DRUM_CHANNEL
        else:
            channel = channels[melodic % len(channels)]
            melodic += 1
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=inst.name, time=0))
        if not inst.is_drum:
            track.append(mido.Message("program_change", channel=channel, program=int(inst.program), time=0))
        events: list[tuple[int, int, mido.Message]] = []  # (tick, order, message); note-offs sort first
        if inst.notes:
            starts = to_ticks([n.start for n in inst.notes], knots)
            ends = to_ticks([n.end for n in inst.notes], knots)
            if quantize:
                starts = np.rint(starts / GRID_TICKS).astype(np.int64) * GRID_TICKS
                ends = np.maximum(
                    np.rint(ends / GRID_TICKS).astype(np.int64) * GRID_TICKS, starts + GRID_TICKS
                )
            ends = np.maximum(ends, starts + 1)
            for note, s, e in zip(inst.notes, starts.tolist(), ends.tolist(), strict=True):
                vel = int(np.clip(round(note.velocity * 127), 1, 127))
                events.append((s, 2, mido.Message("note_on", channel=channel, note=note.pitch, velocity=vel)))
                events.append((e, 0, mido.Message("note_off", channel=channel, note=note.pitch, velocity=0)))
                if note.bend and not inst.is_drum and not quantize:
                    bend_ticks = to_ticks([t for t, _ in note.bend], knots)
                    for bt, (_, semis) in zip(bend_ticks.tolist(), note.bend, strict=True):
                        value = int(np.clip(round(semis / BEND_RANGE * 8191), -8192, 8191))
                        events.append(
                            (max(bt, s), 1, mido.Message("pitchwheel", channel=channel, pitch=value))
                        )
                    events.append((e, 1, mido.Message("pitchwheel", channel=channel, pitch=0)))
        events.sort(key=lambda ev: (ev[0], ev[1]))
        last = 0
        for tick, _, msg in events:
            track.append(msg.copy(time=tick - last))
            last = tick
        track.append(mido.MetaMessage("end_of_track", time=0))
        midi.tracks.append(track)
    return midi


def midi_bytes(result: Result, *, quantize: bool = False, meta: ConductorMeta | None = None) -> bytes:
    buf = io.BytesIO()
    build_midi(result, quantize=quantize, meta=meta).save(file=buf)
    return buf.getvalue()


def write_midi(
    result: Result, path: str | Path, *, quantize: bool = False, meta: ConductorMeta | None = None
) -> Path:
    path = Path(path)
    path.write_bytes(midi_bytes(result, quantize=quantize, meta=meta))
    return path
