"""Sheet-music benchmark: key, time signature, downbeats and chords of `stemscribe.score.analyze`.

For every song of the dev and held-out splits, the analysis runs on (a) the reference notes with the true
beat grid (an upper bound of the analysis alone) and (b) stemscribe's transcription of the mix (its own
notes and beats, per SoundFont for the held-out split). The references come from the material itself:

- mma songs: the generator's chord chart (one chord per bar, in the .mma file that `bench.build`
  writes; the songs are planned again with `bench.build.plan_songs` to get it), its key (in the song's
  description), 4/4 (3/4 where the description says "in 3/4": the metre material's waltzes), a bar line
  every four (three) beats from the window's start;
- chorales: music21's corpus score: its time signature, its bar lines (verses and breaths included) and
  music21's key analysis of the score; no chords (none are stored, see below);
- Planet Blupi: the source MIDI's time signature and bar lines; no key (every file's key signature is the
  C major default) and no chords.

Scores: mir_eval.key (exact, and exact + fifth + relative as "related"; "identifiable": exact, or the
relative key where the generator's chart is the same chord cycle in both modes, `same_cycle_key`, so that
only the chart's label and not the audio tells them apart), time signature exact,
mir_eval.beat.f_measure of the beat grid (over the reference beats' span) and of the downbeats (70 ms,
nothing trimmed), the beat grid's AMLt (mir_eval.beat.continuity: a grid at double or half tempo or on
the off-beat still counts, so a low F1 beside a high AMLt is a phase or metrical-level error),
mir_eval.chord `majmin` and `sevenths` (duration-weighted over each song, then averaged over songs). Usage:

    python -m bench.sheet [--data bench/data] [--heldout bench/data-heldout ...] [--no-mixes]
                          [--engine NAME] [--cache DIR] [--json FILE]

`--heldout` may be given more than once (held-out splits built at other seeds, `python -m bench.build
--split heldout --seed N --data DIR`): their songs are pooled per SoundFont, each song scored against its
own split's references, so the held-out figures rest on more than one split's nine keys.

`--cache DIR` keeps each mix's transcription as a Result JSON under DIR/ENGINE/SPLIT-FONT/ and reads it back
on the next run, so that the analysis can be measured again without transcribing again. The cache keeps
the notes; the beats are tracked again from the mix and those notes (as the pipeline does, after the
notes), so that a change to the beat tracker shows too.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.build import BLUPI_DIR, DATA_DIR, FONTS, HELDOUT_DIR, NOTE_NAMES, WINDOW, default_seed, plan_songs
from stemscribe.result import Instrument, NoteEvent, Result
from stemscribe.score.analysis import ScoreAnalysis, analyze
from stemscribe.stems import Family, family_of_program


@dataclass(slots=True)
class Reference:
    """What is known of one song: any field may be missing (None) when the material does not say."""

    song: str
    source: str
    beats: list[float]
    tempo: float
    time_signature: str | None = None
    downbeats: list[float] | None = None
    key: str | None = None
    chords: list[tuple[float, float, str]] | None = None  # (start, end, mir_eval label)
    # The relative key, where the generator plays the very same chords and melody rules for it
    # (`same_cycle_key`): the audio cannot tell the two, only the chart's label does.
    key_alternative: str | None = None


@dataclass(slots=True)
class Scores:
    key: list[tuple[float, float, float]] = field(default_factory=list)  # (exact, related, identifiable)
    signature: list[float] = field(default_factory=list)
    downbeat: list[float] = field(default_factory=list)
    beat: list[float] = field(default_factory=list)
    beat_any_level: list[float] = field(default_factory=list)  # mir_eval's AMLt
    majmin: list[float] = field(default_factory=list)
    sevenths: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


# -------------------------------------------------------------------------------------------- references


def _mma_chords(mma_file: Path, bpm: float, beats_per_bar: int = 4) -> list[tuple[float, float, str]]:
    """The window's chords from an .mma chart: bar b of the chart starts (b - 2) bars into the window
    (`bench.build` cuts the window one bar in)."""
    bar = beats_per_bar * 60.0 / bpm
    chords = []
    for line in mma_file.read_text(encoding="utf-8").splitlines():
        m = re.fullmatch(r"(\d+) ([A-G][b#]?)(m?)", line.strip())
        if not m:
            continue
        start, end = (int(m.group(1)) - 2) * bar, (int(m.group(1)) - 1) * bar
        if end <= 0 or start >= WINDOW:
            continue
        label = f"{m.group(2)}:{'min' if m.group(3) else 'maj'}"
        chords.append((max(start, 0.0), min(end, WINDOW), label))
    return chords


def same_cycle_key(mma_file: Path, key: str) -> str | None:
    """The relative key of `key` ("Eb major") when the chart's chord cycle is, chord for chord, one of
    `bench.build`'s progressions of the other mode on the relative tonic (vi-IV-I-V in C major is
    i-VI-III-VII in A minor, bar for bar: the generator's melody draws from the same scale and chord
    tones, so the audio of the two charts has one distribution); None when the chart's cycle is its
    mode's alone."""
    from bench.build import MAJOR_PROGRESSIONS, MINOR_PROGRESSIONS

    tonic_name, mode = key.split()
    tonic = NOTE_NAMES.index(tonic_name)
    chart = []
    for line in mma_file.read_text(encoding="utf-8").splitlines():
        m = re.fullmatch(r"(\d+) ([A-G][b#]?)(m?)", line.strip())
        if m:
            chart.append((NOTE_NAMES.index(m.group(2)), bool(m.group(3))))
    relative, others = (
        ((tonic + 9) % 12, MINOR_PROGRESSIONS) if mode == "major" else ((tonic + 3) % 12, MAJOR_PROGRESSIONS)
    )
    for progression in others:
        cycle = [((relative + root) % 12, minor) for root, minor in progression]
        if len(chart) >= len(cycle) and all(c == cycle[i % len(cycle)] for i, c in enumerate(chart)):
            return f"{NOTE_NAMES[relative]} {'minor' if mode == 'major' else 'major'}"
    return None


def _chorale_reference(song: str, description: str) -> Reference:
    from music21 import corpus

    m = re.match(r"chorale (\S+), (\d+) BPM, (\d+) verse", description)
    if not m:
        raise ValueError(f"unexpected chorale description {description!r}")
    name, bpm, verses = m.group(1), int(m.group(2)), int(m.group(3))
    score = corpus.parse(f"bach/{name}")
    beat = 60.0 / bpm
    length_q = float(score.highestTime) + 1.0
    soprano = next(p for p in score.parts if p.partName == "Soprano")
    sig = soprano.recurse().getElementsByClass("TimeSignature").first()
    downbeats = []
    for v in range(verses):
        for measure in soprano.getElementsByClass("Measure"):
            if measure.number >= 1 or not measure.paddingLeft:
                t = (v * length_q + float(measure.offset)) * beat
                if t < WINDOW:
                    downbeats.append(round(t, 6))
    key = score.analyze("key")
    tonic = key.tonic.name.replace("-", "b")
    n_beats = int(np.ceil(WINDOW / beat))
    return Reference(
        song,
        "chorale",
        [i * beat for i in range(n_beats)],
        float(bpm),
        time_signature=sig.ratioString if sig is not None else None,
        downbeats=sorted(set(downbeats)),
        key=f"{tonic} {key.mode}",
    )


def _blupi_reference(song: str, description: str) -> Reference:
    import pretty_midi

    m = re.match(r"Planet Blupi (\S+), window from ([\d.]+) s", description)
    if not m:
        raise ValueError(f"unexpected Planet Blupi description {description!r}")
    pm = pretty_midi.PrettyMIDI(str(BLUPI_DIR / f"{m.group(1)}.mid"))
    start = float(m.group(2))
    inside = [start, start + WINDOW]
    beats = [float(b) - start for b in pm.get_beats() if inside[0] <= b < inside[1]]
    downbeats = [float(b) - start for b in pm.get_downbeats() if inside[0] <= b < inside[1]]
    sigs = [s for s in pm.time_signature_changes if s.time <= start] or pm.time_signature_changes[:1]
    signature = f"{sigs[-1].numerator}/{sigs[-1].denominator}" if sigs else None
    tempo = 60.0 / float(np.median(np.diff(beats))) if len(beats) > 1 else 120.0
    return Reference(song, "blupi", beats, tempo, time_signature=signature, downbeats=downbeats)


def references(
    split: str, seed: int, songs: Sequence[dict[str, Any]], material: str = "standard"
) -> dict[str, Reference]:
    """Every song's Reference; mma charts come from planning the split again (mma runs, nothing renders)."""
    out: dict[str, Reference] = {}
    with tempfile.TemporaryDirectory() as work:
        planned = plan_songs(seed, Path(work), split=split, material=material)
        by_id = {s.song_id: (i, s) for i, s in enumerate(planned)}
        for entry in songs:
            song, description = entry["id"], entry["description"]
            index, plan = by_id[song]
            if plan.description != description:
                raise ValueError(f"{song}: the plan no longer matches the data ({plan.description!r})")
            if entry["source"] == "mma":
                m = re.search(r", (\d+) BPM, (\S+) (major|minor)", description)
                if not m:
                    raise ValueError(f"unexpected mma description {description!r}")
                bpm = float(m.group(1))
                metre = re.match(r"mma groove \S+ in (\d+)/4,", description)
                per_bar = int(metre.group(1)) if metre else 4
                beat = 60.0 / bpm
                n_beats = int(np.ceil(WINDOW / beat))
                out[song] = Reference(
                    song,
                    "mma",
                    [i * beat for i in range(n_beats)],
                    bpm,
                    time_signature=f"{per_bar}/4",
                    downbeats=[
                        i * per_bar * beat
                        for i in range(int(np.ceil(n_beats / per_bar)))
                        if i * per_bar * beat < WINDOW
                    ],
                    key=f"{m.group(2)} {m.group(3)}",
                    chords=_mma_chords(Path(work) / f"song{index:02d}.mma", bpm, per_bar),
                    key_alternative=same_cycle_key(
                        Path(work) / f"song{index:02d}.mma", f"{m.group(2)} {m.group(3)}"
                    ),
                )
            elif entry["source"] == "chorale":
                out[song] = _chorale_reference(song, description)
            else:
                out[song] = _blupi_reference(song, description)
    return out


def reference_result(truth_path: Path, ref: Reference) -> Result:
    """The reference notes of a mix as a Result with the true beat grid."""
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    groups: dict[tuple[int, bool], list[NoteEvent]] = {}
    for n in truth["notes"]:
        groups.setdefault((int(n["program"]), bool(n["is_drum"])), []).append(
            NoteEvent(int(n["pitch"]), float(n["start"]), float(n["end"]), float(n["velocity"]))
        )
    insts = []
    for (program, drum), notes in groups.items():
        family = family_of_program(program, is_drum=drum)
        insts.append(Instrument(family.value, program, drum or family is Family.DRUMS, family, notes))
    return Result(insts, float(truth["duration"]), "mix", ref.tempo, list(ref.beats))


# -------------------------------------------------------------------------------------------- scoring


def _chord_scores(ref: list[tuple[float, float, str]], est: ScoreAnalysis) -> dict[str, float]:
    import mir_eval

    ref_iv = np.array([[s, e] for s, e, _ in ref])
    ref_lab = [label for _, _, label in ref]
    if est.chords:
        est_iv = np.array([[c.start, c.end] for c in est.chords])
        est_lab = [c.mirex for c in est.chords]
    else:
        est_iv, est_lab = np.array([[0.0, WINDOW]]), ["N"]
    scores = mir_eval.chord.evaluate(ref_iv, ref_lab, est_iv, est_lab)
    return {"majmin": float(scores["majmin"]), "sevenths": float(scores["sevenths"])}


def score_one(ref: Reference, est: ScoreAnalysis, into: Scores) -> dict[str, Any]:
    import mir_eval

    row: dict[str, Any] = {"song": ref.song}
    if ref.key is not None:
        est_key = str(est.key) if est.key is not None else "X"
        if est_key == "X":
            exact = related = 0.0
        else:
            # mir_eval's weighted score: 1 exact, 0.5 a fifth away, 0.3 relative, 0.2 parallel
            weighted = float(mir_eval.key.weighted_score(ref.key, est_key))
            exact = float(weighted == 1.0)
            related = float(weighted in (1.0, 0.5, 0.3))
        alternative = (
            ref.key_alternative is not None
            and est_key != "X"
            and (float(mir_eval.key.weighted_score(ref.key_alternative, est_key)) == 1.0)
        )
        identifiable = max(exact, float(alternative))
        into.key.append((exact, related, identifiable))
        row["key"] = f"{ref.key} / {est_key}"
        if ref.key_alternative is not None:
            row["key_alternative"] = ref.key_alternative
    if ref.time_signature is not None:
        ok = float(str(est.time_signature) == ref.time_signature)
        into.signature.append(ok)
        row["time_signature"] = f"{ref.time_signature} / {est.time_signature}"
    if ref.beats:
        # The grid's beats over the reference's span (the score's grid starts at 0 s, a pickup's lead-in)
        half = 0.5 * 60.0 / ref.tempo
        grid = np.array([t for t in est.beats if ref.beats[0] - half <= t <= ref.beats[-1] + half])
        b = mir_eval.beat.f_measure(np.array(ref.beats), grid, f_measure_threshold=0.07)
        into.beat.append(float(b))
        row["beat_f1"] = round(float(b), 3)
        # AMLt: the longest-run-free continuity at any metrical level (double or half tempo, or the
        # off-beat): whether the grid follows the pulse at all, where F1 wants the reference's phase.
        aml = mir_eval.beat.continuity(np.array(ref.beats), grid)[3] if grid.size > 1 else 0.0
        into.beat_any_level.append(float(aml))
        row["beat_amlt"] = round(float(aml), 3)
    if ref.downbeats:
        f = mir_eval.beat.f_measure(
            np.array(ref.downbeats), np.array(est.downbeats), f_measure_threshold=0.07
        )
        into.downbeat.append(float(f))
        row["downbeat_f1"] = round(float(f), 3)
    if ref.chords:
        c = _chord_scores(ref.chords, est)
        into.majmin.append(c["majmin"])
        into.sevenths.append(c["sevenths"])
        row.update({k: round(v, 3) for k, v in c.items()})
    return row


def _mean(xs: Sequence[float]) -> str:
    return f"{np.mean(xs):.3f} ({len(xs)})" if len(xs) else "-"


def summary(scores: Scores) -> list[str]:
    return [
        _mean([k[0] for k in scores.key]),
        _mean([k[1] for k in scores.key]),
        _mean([k[2] for k in scores.key]),
        _mean(scores.signature),
        _mean(scores.beat),
        _mean(scores.beat_any_level),
        _mean(scores.downbeat),
        _mean(scores.majmin),
        _mean(scores.sevenths),
        f"{np.mean(scores.seconds) * 1000:.0f} ms" if scores.seconds else "-",
    ]


HEADERS = [
    "run",
    "key exact",
    "key related",
    "key identifiable",
    "time sig",
    "beat F1",
    "beat AMLt",
    "downbeat F1",
    "chords majmin",
    "chords sevenths",
    "analysis",
]


def _folders(data: Path, heldouts: Sequence[Path]) -> list[tuple[str, str, Path]]:
    """(split, font, folder) of every built split: the dev folder, then each held-out folder's fonts."""
    out = []
    if (data / "manifest.json").exists():
        out.append(("dev", "fluidr3", data))
    for heldout in heldouts:
        for font in FONTS:
            if (heldout / font / "manifest.json").exists():
                out.append(("heldout", font, heldout / font))
    return out


def _transcription(transcriber: Any, mix: Path, cache: Path | None, song: str) -> Result:
    """The mix's transcription, read from `cache` when it holds one (and written there when not); a
    cached one gets its beats tracked again from the mix audio and its notes."""
    stored = None if cache is None else cache / f"{song}.json"
    if stored is not None and stored.exists():
        from stemscribe.audio import load_audio
        from stemscribe.transcription.tempo import track_beats

        cached = Result.from_dict(json.loads(stored.read_text(encoding="utf-8")))
        grid = track_beats(load_audio(mix).samples, cached.instruments)
        tempo = float(grid.tempo) if grid.tempo > 0 else 120.0
        return replace(cached, tempo=tempo, beats=grid.beats.tolist())
    result: Result = transcriber.transcribe(mix, stem="mix")
    if stored is not None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        result.write_json(stored)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sheet", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="dev split folder (bench/data)")
    parser.add_argument(
        "--heldout",
        type=Path,
        action="append",
        default=None,
        help="held-out split (bench/data-heldout); again for more splits, pooled per SoundFont",
    )
    parser.add_argument("--no-mixes", action="store_true", help="only the reference notes, no transcription")
    parser.add_argument("--json", type=Path, default=None, help="also write every song's row here")
    parser.add_argument(
        "--engine",
        default=None,
        help="stemscribe's engine, passed as Transcriber(engine=NAME) (default: the library's own)",
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="keep and reuse the mixes' transcriptions in this folder"
    )
    args = parser.parse_args(argv)
    heldouts = args.heldout or [HELDOUT_DIR]
    folders = _folders(args.data, heldouts)
    if not folders:
        print(
            f"no benchmark data in {args.data} or {', '.join(map(str, heldouts))}: run python -m bench.build",
            file=sys.stderr,
        )
        return 1
    transcriber = None
    if not args.no_mixes:
        from bench.systems import transcriber_options
        from stemscribe import Transcriber

        transcriber = Transcriber(**transcriber_options(engine=args.engine))
    refs_by_split: dict[tuple[str, int], dict[str, Reference]] = {}
    pooled: dict[str, Scores] = {}  # table row -> the scores of every song behind it
    rows: list[dict[str, Any]] = []
    for split, font, folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        seed = int(manifest["seed"])
        other_seed = seed != default_seed(split)
        tag = f" seed {seed}" if other_seed else ""  # in the rows' split
        if (split, seed) not in refs_by_split:
            refs = references(split, seed, manifest["songs"], manifest.get("material", "standard"))
            refs_by_split[split, seed] = refs
            truth_scores = pooled.setdefault(f"{split} reference notes", Scores())
            for song, ref in refs.items():
                result = reference_result(folder / song / "mix.json", ref)
                t0 = time.perf_counter()
                est = analyze(result)
                truth_scores.seconds.append(time.perf_counter() - t0)
                rows.append(
                    {"split": split + tag, "run": "reference notes", **score_one(ref, est, truth_scores)}
                )
        if transcriber is None:
            continue
        mix_scores = pooled.setdefault(f"{split} mixes ({font})", Scores())
        folder_name = f"{split}-s{seed}-{font}" if other_seed else f"{split}-{font}"
        cache = None if args.cache is None else args.cache / (args.engine or "default") / folder_name
        for song, ref in refs_by_split[split, seed].items():
            result = _transcription(transcriber, folder / song / "mix.flac", cache, song)
            t0 = time.perf_counter()
            est = analyze(result)
            mix_scores.seconds.append(time.perf_counter() - t0)
            rows.append({"split": split + tag, "run": f"mix {font}", **score_one(ref, est, mix_scores)})
    table = [[name, *summary(scores)] for name, scores in pooled.items()]
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    print()
    widths = [max(len(r[i]) for r in [HEADERS, *table]) for i in range(len(HEADERS))]
    for r in [HEADERS, *table]:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(f"\n(n) = songs with that reference; mma keys from the generator ({', '.join(NOTE_NAMES[:3])}...)")
    if args.json is not None:
        args.json.write_text(
            json.dumps({"table": [HEADERS, *table], "rows": rows}, indent=1), encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
