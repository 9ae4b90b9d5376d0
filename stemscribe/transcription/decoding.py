"""How each stem is decoded: the per-stem table of decoder and thresholds, and the mix's decodes.

`STEM_DECODING` says, per stem type, whether it is decoded as one line (`notes.decode_monophonic`)
or as chords (`notes.decode_polyphonic`) and with which `DecodeOptions`; `stem_decodings` applies
it (a lead or section stem decides line-or-chords once), `mix_notes` and `mix_lines` decode a mix.
Pure array code on the pitch model's posteriors: no model, no audio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from stemscribe.stems import StemType
from stemscribe.transcription.notes import (
    DecodeOptions,
    NoteArrays,
    decode_monophonic,
    decode_polyphonic,
)
from stemscribe.transcription.pitch_model import Posteriors

STEM_DECODING: dict[StemType, tuple[bool, DecodeOptions]] = {
    StemType.BASS: (
        True,
        DecodeOptions(
            min_pitch=23,
            max_pitch=67,
            onset_threshold=0.4,
            frame_threshold=0.4,
            backtrack_frames=4,
            harmonic_boost=0.6,
        ),
    ),
    StemType.VOCALS: (
        True,
        DecodeOptions(
            min_pitch=36,
            max_pitch=88,
            onset_threshold=0.4,
            frame_threshold=0.3,
            rise_level=0.2,
            reattack_rise=1.3,
            reattack_db=8.0,
        ),
    ),
    StemType.WINDS: (
        True,
        DecodeOptions(min_pitch=36, max_pitch=108, onset_threshold=0.4, frame_threshold=0.4, reattack_db=8.0),
    ),
    StemType.PIANO: (
        False,
        DecodeOptions(onset_threshold=0.6, frame_threshold=0.4, offset_ratio=0.8, harmonic_ratio=0.8),
    ),
    StemType.GUITAR: (
        False,
        DecodeOptions(min_pitch=36, max_pitch=96, frame_threshold=0.45, offset_ratio=0.7, strong_onset=0.8),
    ),
    StemType.KEYS: (False, DecodeOptions(offset_ratio=0.8)),
    StemType.STRINGS: (
        False,
        DecodeOptions(min_pitch=28, max_pitch=105, onset_threshold=0.6, offset_ratio=0.7),
    ),
    StemType.BRASS: (False, DecodeOptions(min_pitch=28, max_pitch=96, onset_threshold=0.6, offset_ratio=0.7)),
    StemType.SYNTH: (False, DecodeOptions(onset_threshold=0.6, offset_ratio=0.7)),
    StemType.OTHER: (False, DecodeOptions(onset_threshold=0.6, offset_ratio=0.7)),
}
"""Stem type -> (decoded as one line, its options): the range and thresholds of each stem."""
# The transcription network's notes also end where their posterior falls below this share of its own
# peak (`DecodeOptions.offset_ratio`; the frame threshold alone leaves release tails and reverb on),
# per stem type; a mix's notes before each gets its family take MIX's, "other" stems the share chosen
# over all stems. Chosen on the dev split's stems and mixes by `training.transcriber.tune_offsets` (the
# best onset+offset F1 that costs at most 0.005 onset F1; README "Transcription network").
NETWORK_OFFSET_RATIO: dict[StemType, float] = {
    StemType.MIX: 0.7,
    StemType.VOCALS: 0.6,
    StemType.BASS: 0.5,
    StemType.PIANO: 0.8,
    StemType.GUITAR: 0.8,
    StemType.KEYS: 0.9,
    StemType.STRINGS: 0.75,
    StemType.BRASS: 0.5,
    StemType.WINDS: 0.7,
    StemType.SYNTH: 0.7,
    StemType.OTHER: 0.8,
}
# Engine "auto": basic-pitch's notes of these stem types (decoded and verified as `STEM_DECODING` says)
# end where the network's posterior hears them end (`notes.ends_from_frames` with the network's frame
# threshold and this offset ratio): basic-pitch finds their onsets as well as the network or better,
# the network their ends far better. Chosen on the dev split's stems by
# `training.transcriber.tune_offsets --decoders basic-pitch` (README "Transcription network").
NETWORK_END_RATIO: dict[StemType, float] = {
    StemType.BASS: 0.5,
    StemType.GUITAR: 0.8,
    StemType.KEYS: 0.8,
    StemType.PIANO: 0.85,
    StemType.VOCALS: 0.7,
    StemType.WINDS: 0.7,
}
# Candidates for the note verifier are decoded with the final thresholds scaled by this.
CANDIDATE_RELAX = 0.8
_SECTION_STEMS = frozenset({StemType.STRINGS, StemType.BRASS})
_LEAD_POLY = DecodeOptions(min_pitch=36, onset_threshold=0.6, offset_ratio=0.7)
_MIX_POLY = DecodeOptions(onset_threshold=0.55)
_MIX_BASS = DecodeOptions(
    min_pitch=23,
    max_pitch=52,
    onset_threshold=0.4,
    frame_threshold=0.35,
    backtrack_frames=4,
    harmonic_boost=0.4,
    harmonic_below=38,
)
_MIX_LEAD = DecodeOptions(min_pitch=57, max_pitch=96, onset_threshold=0.5, frame_threshold=0.4)


def network_decode_options(stem: StemType, onset: float, frame: float) -> DecodeOptions:
    """How the network's pooled posteriors of `stem` audio (a mix: StemType.MIX) are decoded: its
    `onset` and `frame` thresholds, and the stem's `NETWORK_OFFSET_RATIO`."""
    ratio = NETWORK_OFFSET_RATIO[stem]
    return DecodeOptions(onset_threshold=onset, frame_threshold=frame, offset_ratio=ratio)


def _polyphony(notes: NoteArrays, n_frames: int) -> float:
    """Share of sounding frames where two or more notes sound."""
    if len(notes) == 0:
        return 0.0
    count = np.zeros(n_frames + 1, dtype=np.int64)
    np.add.at(count, notes.start, 1)
    np.add.at(count, notes.end, -1)
    sounding = np.cumsum(count)[:n_frames]
    voiced = int((sounding > 0).sum())
    return float((sounding > 1).sum()) / voiced if voiced else 0.0


def _loosen(options: DecodeOptions, relax: float) -> DecodeOptions:
    """`options` with its thresholds scaled by `relax` (< 1 lets more candidates through)."""
    if relax == 1.0:
        return options
    return replace(
        options,
        onset_threshold=options.onset_threshold * relax,
        frame_threshold=options.frame_threshold * relax,
        strong_onset=options.strong_onset * relax,
    )


def _stem_decoder(
    post: Posteriors, loud: npt.NDArray[np.float32], stem: StemType
) -> tuple[
    Callable[[Posteriors, npt.NDArray[np.float32], DecodeOptions], NoteArrays],
    DecodeOptions,
    NoteArrays | None,
]:
    """How a pitched stem is decoded (see `STEM_DECODING`): the decoder, its options, and the notes
    they give when deciding already decoded them (None otherwise)."""
    mono_line, options = STEM_DECODING[stem]
    if mono_line and stem is not StemType.BASS:
        # Lead stems are usually one line, but sections play chords (a sax section, a choir):
        # decode polyphonically first and keep that when the stem really is polyphonic.
        poly = decode_polyphonic(post, loud, _LEAD_POLY)
        if _polyphony(poly, post.n_frames) > 0.2:
            return decode_polyphonic, _LEAD_POLY, poly
    elif stem in _SECTION_STEMS:
        # Section stems are usually chords, but a single string or brass line decodes better
        # as a line: slow bowed attacks and legato repeats defeat the onset head.
        poly = decode_polyphonic(post, loud, options)
        if _polyphony(poly, post.n_frames) > 0.2:
            return decode_polyphonic, options, poly
        line = replace(
            STEM_DECODING[StemType.VOCALS][1], min_pitch=options.min_pitch, max_pitch=options.max_pitch
        )
        return decode_monophonic, line, None
    return (decode_monophonic if mono_line else decode_polyphonic), options, None


def stem_decodings(
    post: Posteriors, loud: npt.NDArray[np.float32], stem: StemType, relaxes: Sequence[float]
) -> list[NoteArrays]:
    """A pitched stem's notes decoded with its thresholds scaled by each of `relaxes`.

    Whether a lead or section stem is a line or chords is decided once, with the stem's own
    thresholds; relax 1.0 gives the stem's notes, smaller ones candidates for the note verifier.
    """
    decode, options, decided = _stem_decoder(post, loud, stem)
    return [
        decided if relax == 1.0 and decided is not None else decode(post, loud, _loosen(options, relax))
        for relax in relaxes
    ]


def stem_notes(
    post: Posteriors, loud: npt.NDArray[np.float32], stem: StemType, *, relax: float = 1.0
) -> NoteArrays:
    """A pitched stem's notes, with its thresholds scaled by `relax` (see `stem_decodings`)."""
    return stem_decodings(post, loud, stem, (relax,))[0]


def mix_notes(post: Posteriors, loud: npt.NDArray[np.float32], *, relax: float = 1.0) -> NoteArrays:
    """A mix's polyphonic notes (which notes exist; the bass and lead lines only say who plays them),
    with the thresholds scaled by `relax` (candidates for the note verifier)."""
    return decode_polyphonic(post, loud, _loosen(_MIX_POLY, relax))


def mix_lines(post: Posteriors, loud: npt.NDArray[np.float32]) -> tuple[NoteArrays, NoteArrays]:
    """A mix's (bass line, lead line), each decoded as one line in its own range: they say who plays
    the notes `mix_notes` found (see `roles.assign_roles`)."""
    return decode_monophonic(post, loud, _MIX_BASS), decode_monophonic(post, loud, _MIX_LEAD)
