"""Composed polyphony for the transcription network: the voices of music21's corpus, Bach left out.

The generators write melodies over chords and MMA's grooves write band parts; neither writes voices
that move independently, cross and hold against each other, as vocal polyphony, madrigals and string
quartets do (and as the benchmark's chorales do). This module reads such scores from music21's corpus
(Palestrina, Monteverdi, the Trecento, Josquin, the Beethoven, Mozart and Haydn quartets, and the
other multi-part scores), never a Bach work (`is_training_score`: the chorales are evaluation-only).

`score_cache` parses them once into a JSON cache (per score, per voice: onset and end in quarter
notes and MIDI pitch, ties joined); `score_voices` cuts a random window at a random tempo and
transposition, which `training.timbre.data.make_clip` and `training.verify.data.make_stem` play on
instruments of their own choosing.
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np

from stemscribe.stems import Family
from training.timbre.data import RANGES, Note

log = logging.getLogger(__name__)

# Corpus folders of multi-part music; folk-tune collections (one line each) are not read.
COMPOSERS = (
    "palestrina", "monteverdi", "trecento", "josquin", "beethoven", "mozart", "haydn", "schumann_robert",
    "schumann_clara", "ciconia", "luca", "lusitano", "corelli", "handel", "schubert", "verdi", "weber",
    "chopin", "joplin", "beach", "johnson_j_r", "liliuokalani", "schoenberg", "webern",
)  # fmt: skip
PALESTRINA_LIMIT = 320  # of its 1,318 movements, a seeded sample: the cache takes minutes, not an hour
MIN_VOICES = 2
QUARTER_SECONDS = (0.38, 0.85)  # ~70-160 quarter notes a minute
TRANSPOSE = 5  # semitones either way
CONSORT_SHARE = 0.3


def is_training_score(path: str) -> bool:
    """Whether a corpus path may be trained on: a score (not a Roman-numeral analysis) of one of
    `COMPOSERS`, and no Bach at all."""
    parts = path.replace("\\", "/").split("/corpus/")[-1].split("/")
    return "bach" not in path.lower() and parts[0] in COMPOSERS and not path.endswith(".rntxt")


def _voices(score: object) -> list[list[tuple[float, float, int]]]:
    """Per part of a parsed score: (onset quarter, end quarter, MIDI pitch), ties joined, chords split."""
    voices = []
    for part in getattr(score, "parts", []):
        notes = []
        for el in part.stripTies().flatten().notes:
            start, length = float(el.offset), float(el.quarterLength)
            if length <= 0:
                continue
            notes.extend((round(start, 4), round(start + length, 4), int(p.midi)) for p in el.pitches)
        if notes:
            voices.append(sorted(notes))
    return voices


def score_cache(cache: Path) -> list[dict]:
    """The parsed training scores (built on first use and kept at `cache`, gzip JSON)."""
    if cache.is_file():
        with gzip.open(cache, "rt") as f:
            return list(json.load(f))
    from music21 import corpus

    paths = sorted(str(p) for p in corpus.getPaths() if is_training_score(str(p)))
    palestrina = [p for p in paths if "/palestrina/" in p]
    keep = set(np.random.default_rng(0).choice(palestrina, PALESTRINA_LIMIT, replace=False).tolist())
    paths = [p for p in paths if "/palestrina/" not in p or p in keep]
    records = []
    for path in paths:
        try:
            parsed = corpus.parse(path)
        except Exception as exc:  # noqa: BLE001 - music21 raises many kinds for odd corpus files
            log.warning("skipping %s: %s", path, exc)
            continue
        for score in getattr(parsed, "scores", [parsed]):  # an Opus holds several
            voices = _voices(score)
            if len(voices) >= MIN_VOICES:
                name = path.split("/corpus/")[-1]
                records.append({"id": name, "voices": voices, "length": max(v[-1][1] for v in voices)})
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    with gzip.open(tmp, "wt") as f:
        json.dump(records, f)
    tmp.rename(cache)
    log.info("%d scores from %d corpus files -> %s", len(records), len(paths), cache)
    return records


def score_voices(
    rng: np.random.Generator, record: dict, seconds: float, *, lowest: int = 21, highest: int = 108
) -> tuple[list[list[Note]], float]:
    """A random `seconds` window of a score: per voice its notes (seconds, velocity drawn per voice
    with a phrase-long swell), voices that are silent there dropped, and the beat (a quarter) in s."""
    quarter = float(rng.uniform(*QUARTER_SECONDS))
    span = seconds / quarter
    start = float(rng.uniform(0.0, max(0.0, float(record["length"]) - span * 0.5)))
    shift = int(rng.integers(-TRANSPOSE, TRANSPOSE + 1))
    legato = float(rng.uniform(0.85, 1.0))
    voices: list[list[Note]] = []
    for voice in record["voices"]:
        level = float(rng.uniform(55, 110))
        notes: list[Note] = []
        for on, off, pitch in voice:
            if on < start or on >= start + span:
                continue
            t0 = (on - start) * quarter
            t1 = t0 + (off - on) * quarter * legato
            swell = 12.0 * np.sin(np.pi * t0 / max(seconds, 1e-6))
            velocity = int(np.clip(level + swell + rng.normal(0, 6), 20, 127))
            p = pitch + shift
            if lowest <= p <= highest:
                notes.append((round(t0, 6), round(min(t1, seconds), 6), p, velocity))
        if notes:
            voices.append(notes)
    return voices, quarter


def median_pitch(voice: list[Note]) -> float:
    """The median MIDI pitch of a voice's notes: where its range sits."""
    return float(np.median([p for _, _, p, _ in voice]))


def voice_families(rng: np.random.Generator, voices: list[list[Note]]) -> list[Family]:
    """A family per voice whose usual range holds the voice's median pitch: one family for all voices
    (a consort: a quartet, a choir) with chance `CONSORT_SHARE`, else one each; bass only for the
    lowest voice. Voices no family's range holds get the widest-ranged families."""
    medians = [median_pitch(v) for v in voices]
    lowest = int(np.argmin(medians)) if medians else -1

    def fits(k: int) -> list[Family]:
        ok = [f for f in RANGES if RANGES[f][0] <= medians[k] <= RANGES[f][1]]
        ok = [f for f in ok if f is not Family.BASS or k == lowest]
        return ok or [Family.PIANO, Family.STRINGS, Family.SYNTH]

    options = [fits(k) for k in range(len(voices))]
    common = [f for f in options[0] if all(f in o for o in options)] if options else []
    if common and rng.random() < CONSORT_SHARE:
        family = common[int(rng.integers(len(common)))]
        return [family] * len(voices)
    return [o[int(rng.integers(len(o)))] for o in options]
