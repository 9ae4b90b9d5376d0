"""Choose how the network engine ends a stem's notes, on the dev split's stems only; the held-out split's
figures of every setting are printed beside them and never used to choose.

    python -m training.transcriber.tune_offsets [--weights stemscribe/weights/transcriber.onnx]
    python -m training.transcriber.tune_offsets --decoders basic-pitch

Each benchmark stem with pitched notes, and each mix (`bench/data`, `bench/data-heldout/*`, built by
`python -m bench.build`) goes once through `Transcriber(engine="network").stem_posteriors` (the pitch
model and the network, as the pipeline runs them on a stem); then every setting of the grid decodes the
cached posteriors (`network.family_notes` with the network's own onset and frame thresholds) and is scored
with the benchmark's onset+offset F1 on the pitched notes (mir_eval's defaults, micro over the group) per
stem type ("mix" for the mixes). The setting is `DecodeOptions.offset_ratio`: a note also ends where its
posterior falls below that share of its own peak (0: only the frame threshold ends it). It prints, per
stem type, each setting's dev and held-out F1 with the onset-only F1, best dev first, and how far the
decoded ends of onset-matched notes fall from the references' (median over the dev items, seconds), and
the choice: the best dev onset+offset F1 among the settings within `ONSET_SLACK` of the best dev onset
F1 (what `decoding.NETWORK_OFFSET_RATIO` holds; "all stems" is the choice for "other" stems).

`--decoders basic-pitch` tunes how engine "auto" ends basic-pitch's notes of the stem types it keeps on
basic-pitch's decoders (not the mixes; `decoding.NETWORK_END_RATIO`): each setting runs the pipeline's
own stem decoding with the note verifier (`Transcriber._decode_stem`), the notes then ending where the
network hears them end with that offset ratio (`notes.ends_from_frames`), or keeping basic-pitch's own
ends (setting -1).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from bench.dataset import load_items
from bench.score import Counts, ScoredNote, match_notes, sum_counts
from stemscribe.audio import load_audio
from stemscribe.stems import StemType
from stemscribe.transcription import decoding
from stemscribe.transcription.network import family_notes
from stemscribe.transcription.notes import DecodeOptions, to_events
from stemscribe.transcription.pipeline import Transcriber, _Analysis
from stemscribe.transcription.pitch_model import SAMPLE_RATE
from training.transcriber.tune_mix import bench_folders, network_transcriber

OFFSET_RATIOS = (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)
ONSET_SLACK = 0.005  # the most dev onset F1 a stem type's choice may give up for its offsets


@dataclass
class Cached:
    group: str
    stem: str
    decode: Callable[[float], list[ScoredNote]]  # the item's notes with a given offset ratio
    reference: list[ScoredNote]


def scored(events: list) -> list[ScoredNote]:  # type: ignore[type-arg]
    return [ScoredNote(e.pitch, e.start, e.end, "") for e in events]


def network_item(transcriber: Transcriber, mono: np.ndarray, base: DecodeOptions) -> Callable[[float], list]:  # type: ignore[type-arg]
    """The network engine's notes of one input, from its posteriors made once."""
    fp, loud = transcriber.stem_posteriors(mono)
    return lambda ratio: scored(to_events(family_notes(fp, 0, loud, replace(base, offset_ratio=ratio))))


OWN_ENDS = -1.0  # the setting "basic-pitch's own ends" of `--decoders basic-pitch`


@contextmanager
def network_end_ratio(stem: StemType, ratio: float) -> Iterator[None]:
    """`decoding.NETWORK_END_RATIO[stem]` set to `ratio` (OWN_ENDS: unset) for the duration."""
    table = decoding.NETWORK_END_RATIO
    saved = table.get(stem)
    table.pop(stem, None)
    if ratio != OWN_ENDS:
        table[stem] = ratio
    try:
        yield
    finally:
        table.pop(stem, None)
        if saved is not None:
            table[stem] = saved


def basic_pitch_item(transcriber: Transcriber, mono: np.ndarray, stem: StemType) -> Callable[[float], list]:  # type: ignore[type-arg]
    """The auto engine's basic-pitch notes of one stem (decoders and verifier), posteriors made once,
    ending as the setting says (OWN_ENDS, or the network's ends with that offset ratio)."""
    analysis = _Analysis(transcriber._pitched, mono)
    transcriber._stem_posteriors(analysis)  # both models once (the analysis keeps them), before the settings

    def decode_with(ratio: float) -> list[ScoredNote]:
        with network_end_ratio(stem, ratio):
            return scored(transcriber._decode_stem(analysis, stem))

    return decode_with


def end_error(ref: list[ScoredNote], est: list[ScoredNote]) -> float:
    """Median (decoded end - reference end) in seconds over the onset-matched notes."""
    import mir_eval.transcription

    if not ref or not est:
        return float("nan")
    iv = lambda ns: np.array([[n.start, n.end] for n in ns])  # noqa: E731
    hz = lambda ns: mir_eval.util.midi_to_hz(np.array([n.pitch for n in ns], float))  # noqa: E731
    pairs = mir_eval.transcription.match_notes(iv(ref), hz(ref), iv(est), hz(est), offset_ratio=None)
    if not pairs:
        return float("nan")
    return float(np.median([est[j].end - ref[i].end for i, j in pairs]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--decoders", choices=("network", "basic-pitch"), default="network")
    known, rest = parser.parse_known_args(argv)
    bp = known.decoders == "basic-pitch"
    transcriber = network_transcriber(__doc__, rest)
    if bp:  # the same weights and threads, the engine whose stems keep basic-pitch's decoders
        transcriber = Transcriber(
            engine="auto", network_weights=transcriber.network_weights, threads=transcriber.threads
        )
    base = DecodeOptions()
    if not bp:
        network = transcriber.network
        assert network is not None
        onset, frame = network.thresholds()["pitch"]
        base = DecodeOptions(onset_threshold=onset, frame_threshold=frame)
    folders = bench_folders()
    items = []
    for group, folder in folders.items():
        for item in load_items(folder):
            reference = [n for n in item.reference() if not n.is_drum]
            if not reference:
                continue
            stem = StemType.MIX if item.is_mix else StemType(item.stem)
            if bp and (stem is StemType.MIX or transcriber.uses_network(stem) or stem is StemType.OTHER):
                continue
            mono = load_audio(item.audio, sr=SAMPLE_RATE, mono=True).samples
            decode = (
                basic_pitch_item(transcriber, mono, stem) if bp else network_item(transcriber, mono, base)
            )
            items.append(Cached(group, stem.value, decode, reference))
    groups = list(folders)
    stems = sorted({i.stem for i in items})
    results: dict[float, dict[tuple[str, str], tuple[Counts, Counts, list[float]]]] = {}
    for ratio in (OWN_ENDS, *OFFSET_RATIOS) if bp else OFFSET_RATIOS:
        by: dict[tuple[str, str], list[tuple[Counts, Counts, float]]] = {}
        for item in items:
            est = item.decode(ratio)
            by.setdefault((item.group, item.stem), []).append(
                (
                    match_notes(item.reference, est, with_offsets=True),
                    match_notes(item.reference, est),
                    end_error(item.reference, est),
                )
            )
        results[ratio] = {
            k: (sum_counts(c[0] for c in v), sum_counts(c[1] for c in v), [c[2] for c in v])
            for k, v in by.items()
        }
    for stem in [*stems, "all stems"]:
        print(f"\n## {stem}: onset+offset F1 per group (onset F1), median end error s of dev")
        rows = []
        for setting, res in results.items():
            f1 = {}
            for g in groups:
                keys = [
                    k for k in res if k[0] == g and (k[1] == stem or (stem == "all stems" and k[1] != "mix"))
                ]
                f1[g] = (
                    sum_counts(res[k][0] for k in keys).f1,
                    sum_counts(res[k][1] for k in keys).f1,
                )
            dev_keys = [
                k for k in res if k[0] == "dev" and (k[1] == stem or (stem == "all stems" and k[1] != "mix"))
            ]
            err = np.nanmedian([e for k in dev_keys for e in res[k][2]] or [np.nan])
            rows.append((setting, f1, err))
        rows.sort(key=lambda r: -r[1]["dev"][0])
        print("ratio " + " ".join(groups) + " dev_end_err")
        for ratio, f1, err in rows:
            cells = " ".join(f"{f1[g][0]:.3f}({f1[g][1]:.3f})" for g in groups)
            print(f"{ratio:5.2f} {cells} {err:+.3f}")
        best_onset = max(f1["dev"][1] for _, f1, _ in rows)
        chosen = next(r for r, f1, _ in rows if f1["dev"][1] >= best_onset - ONSET_SLACK)
        print(f"chosen: {chosen:.2f}")


if __name__ == "__main__":
    main()
