"""Wire the stages (separation, pitch model, decoding, roles, timbre, verify, drums, tempo) into a Result."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from stemscribe.audio import DEFAULT_MAX_DURATION, Audio, AudioSource, from_array, load_audio
from stemscribe.errors import InvalidOptionError, ModelError
from stemscribe.progress import ProgressCallback, report
from stemscribe.result import Instrument, NoteEvent, Result
from stemscribe.separation.base import Separator, get_separator
from stemscribe.separation.hpss import HPSSSeparator
from stemscribe.stems import FAMILY_PROGRAM, STEM_FAMILY, Family, StemType, gm_program_name
from stemscribe.transcription.decoding import (
    CANDIDATE_RELAX,
    NETWORK_END_RATIO,
    mix_lines,
    mix_notes,
    network_decode_options,
    stem_decodings,
    stem_notes,
)
from stemscribe.transcription.drums import DrumTranscriber, get_drum_backend
from stemscribe.transcription.network import (
    FamilyPosteriors,
    NetworkTranscriber,
    SongSpectrum,
    family_notes,
    note_families,
    note_family_shares,
    pitch_posteriors,
    song_spectrum,
)
from stemscribe.transcription.notes import (
    DecodeOptions,
    NoteArrays,
    ends_from_frames,
    frame_loudness,
    pitch_bends,
    to_events,
)
from stemscribe.transcription.pitch_model import SAMPLE_RATE, PitchModel, Posteriors, n_output_frames
from stemscribe.transcription.roles import assign_roles, smooth_family_probs
from stemscribe.transcription.tempo import onset_envelope, track_beats
from stemscribe.transcription.timbre import TIMBRE_FAMILIES, notes_features

FAMILY_WINDOW = 86  # frames (~1 s) over which a role's family estimates are averaged

ENGINES = ("auto", "network", "basic-pitch")
# What `engine="auto"` gives the network (when its weights ship), chosen on the held-out benchmark
# split (README "Transcription network"); the other inputs keep basic-pitch's decoders and verifier.
# Stems: the families where the network scored higher on the dev split's stems with the step-8831
# weights (network / basic-pitch: guitar .861/.846, strings .857/.850, brass .926/.885, winds .911/.891,
# synth .905/.868; bass, piano, vocals and keys lower) and the held-out fonts confirmed it on average
# (strings, brass, synth; not guitar or winds), the re-check the network issue asks before keeping one.
AUTO_NETWORK_INPUTS = frozenset({StemType.MIX, StemType.STRINGS, StemType.BRASS, StemType.SYNTH})
MIN_FAMILY_NOTES = 8  # a family the network hears fewer notes of is not written as an instrument
# How a mix's network notes get their family: "blend" decodes the notes whoever plays them, then weighs
# the network's family head (FAMILY_BLEND) against the timbre classifier; "split" decodes each
# family's own posteriors. Chosen on the dev split's mixes (README "Transcription network").
MIX_DECODE = "blend"
FAMILY_BLEND = 0.3
# The classifier's per-note estimates in a mix are averaged over the notes within FAMILY_WINDOW frames
# and this many semitones (one player's neighbourhood); chosen with FAMILY_BLEND and MIN_FAMILY_NOTES
# by `training.transcriber.tune_mix` on the dev mixes.
FAMILY_PITCH_WINDOW = 4

# Separation backends name their stems after demucs' sources.
_SOURCE_STEM: dict[str, StemType] = {
    "vocals": StemType.VOCALS,
    "drums": StemType.DRUMS,
    "bass": StemType.BASS,
    "guitar": StemType.GUITAR,
    "piano": StemType.PIANO,
    "other": StemType.OTHER,
}


PitchedFn = Callable[[npt.NDArray[np.float32]], tuple[Posteriors, npt.NDArray[np.float32]]]
SpectrumFn = Callable[[], SongSpectrum]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class MixNotes:
    """A mix's notes from the network before each gets a family (`Transcriber.mix_notes`): `notes`,
    `shares` (n_notes, 9) how the network's family head shares each note (`note_family_shares`), and
    `heard` (n_notes, 9) the timbre classifier's family probabilities per note, not yet averaged over
    neighbours, from `features` (n_notes, N_FEATURES) the notes' timbre features (both None without a
    classifier, or with no notes)."""

    notes: NoteArrays
    shares: npt.NDArray[np.float32]
    heard: npt.NDArray[np.float32] | None
    features: npt.NDArray[np.float32] | None = None


class _Analysis:
    """One input's 22.05 kHz mono signal and the expensive views of it, each computed at most once."""

    def __init__(self, pitched: PitchedFn, mono22: npt.NDArray[np.float32]) -> None:
        self._pitch_fn, self.mono22 = pitched, mono22
        self._pitched: tuple[Posteriors, npt.NDArray[np.float32]] | None = None
        self._parts: dict[str, Audio] | None = None
        # the network's family-pooled posteriors and the loudness (`Transcriber._stem_posteriors`)
        self.pooled: tuple[FamilyPosteriors, npt.NDArray[np.float32]] | None = None

    @property
    def pitched(self) -> tuple[Posteriors, npt.NDArray[np.float32]]:
        """(posteriors, per-frame loudness) of the whole signal."""
        if self._pitched is None:
            self._pitched = self._pitch_fn(self.mono22)
        return self._pitched

    def hpss(self, separator: HPSSSeparator | None = None) -> dict[str, Audio]:
        """ "drums" and "harmonic" parts from the built-in split."""
        if self._parts is None:
            self._parts = (separator or HPSSSeparator()).separate(Audio(self.mono22, SAMPLE_RATE))
        return self._parts

    def release_hpss(self) -> None:
        """Forget the split's parts (two copies of the signal) once nothing more needs them."""
        self._parts = None


class _Handover(Generic[T]):
    """What a side thread makes, taken once: `take` waits for it and keeps no reference to it, so a
    large result (a song's spectrum) is freed as soon as its user is done."""

    def __init__(self, future: Future[T]) -> None:
        self._future: Future[T] | None = future

    def take(self) -> T:
        future, self._future = self._future, None
        if future is None:
            raise RuntimeError("a side result was taken twice")
        return future.result()


def _instrument(
    family: Family, notes: list[NoteEvent], *, name: str | None = None, program: int | None = None
) -> Instrument:
    """An instrument of `family`, named with `program` (its family's default program when None)."""
    if family is Family.DRUMS:
        return Instrument("Drums", 0, True, family, notes)
    if family is Family.VOCALS:
        name = name or "Synth Voice"  # as Suno's own MIDI names a vocal line
    program = FAMILY_PROGRAM[family] if program is None else program
    return Instrument(name or gm_program_name(program), program, False, family, notes)


def _clip(inst: Instrument, duration: float) -> Instrument:
    """Keep notes inside [0, duration]; drop those left without length."""
    notes = [
        NoteEvent(n.pitch, max(0.0, n.start), min(duration, n.end), n.velocity, n.bend)
        for n in inst.notes
        if n.start < duration and n.end > 0
    ]
    inst.notes = [n for n in notes if n.end > n.start]
    return inst


@dataclass(slots=True)
class Transcriber:
    """Loads the models once and transcribes any number of files, arrays or stems.

    `separator` names a separation backend ("demucs", "hpss"; None uses the built-in
    harmonic/percussive split for mixes); `drums` names the drum backend ("auto", "model", "dsp");
    `verify` lets the trained note verifier (`transcription.verify`) keep or drop each candidate note
    decoded with loosened thresholds (False: the fixed thresholds decide alone). `engine` picks who
    hears the pitched notes: "network" (our transcription network, `transcription.network`: every
    family of a mix at once), "basic-pitch" (basic-pitch's network with our decoders, verifier and
    timbre classifier) or "auto" (the network for the inputs in `AUTO_NETWORK_INPUTS` when its
    weights ship, basic-pitch otherwise); `network_weights` loads other weights than the shipped ones.
    `programs` names each instrument of a mix with the GM program of its family that the program
    model (`transcription.programs`, when its weights ship; `program_weights` loads others) hears
    in its notes (False, or no weights: each family's default program, `stems.FAMILY_PROGRAM`).
    """

    separator: str | None = None
    drums: str = "auto"
    max_duration: float = DEFAULT_MAX_DURATION
    pitch_bends: bool = False
    families: bool = True
    verify: bool = True
    threads: int | None = None
    engine: str = "auto"
    network_weights: str | Path | None = None
    programs: bool = True
    program_weights: str | Path | None = None
    _pitch: PitchModel | None = field(default=None, init=False, repr=False)
    _network: Any = field(default=None, init=False, repr=False)
    _drums: DrumTranscriber | None = field(default=None, init=False, repr=False)
    _separator: Separator | None = field(default=None, init=False, repr=False)
    _families: Any = field(default=None, init=False, repr=False)
    _programs: Any = field(default=None, init=False, repr=False)
    _verifier: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise InvalidOptionError(f"unknown engine {self.engine!r}; choose one of: {', '.join(ENGINES)}")
        if self.engine == "network" and not NetworkTranscriber.available(self.network_weights):
            raise ModelError(
                "the transcription network's weights are not installed (stemscribe/weights/transcriber.onnx "
                "and its .sha256); use engine='basic-pitch'"
            )

    # -- models, loaded on first use and kept ------------------------------------------------------
    @property
    def network(self) -> NetworkTranscriber | None:
        """Our transcription network, or None (engine "basic-pitch", or "auto" without its weights)."""
        with self._lock:
            if self._network is None:
                wanted = self.engine != "basic-pitch" and NetworkTranscriber.available(self.network_weights)
                self._network = (
                    NetworkTranscriber(self.network_weights, threads=self.threads or 0) if wanted else False
                )
            return self._network or None

    def uses_network(self, stem: StemType) -> bool:
        """Whether the network hears `stem` audio (a mix, or a stem type) with this engine."""
        if self.engine == "basic-pitch" or stem is StemType.DRUMS:
            return False
        if self.engine == "auto" and stem not in AUTO_NETWORK_INPUTS:
            return False
        return self.network is not None

    @property
    def pitch_model(self) -> PitchModel:
        with self._lock:
            if self._pitch is None:
                self._pitch = PitchModel(threads=self.threads)
            return self._pitch

    @property
    def drum_model(self) -> DrumTranscriber:
        with self._lock:
            if self._drums is None:
                self._drums = get_drum_backend(self.drums)
            return self._drums

    @property
    def family_model(self) -> Any:
        """The instrument-family classifier for mixes, or None (weights not shipped, or families=False)."""
        from stemscribe.transcription.timbre import FamilyClassifier

        with self._lock:
            if self._families is None:
                self._families = (
                    FamilyClassifier(threads=self.threads or 0)
                    if self.families and FamilyClassifier.available()
                    else False
                )
            return self._families or None

    @property
    def program_model(self) -> Any:
        """The GM program classifier for a mix's instruments, or None (weights not shipped, or
        programs=False or families=False: each family keeps its default program)."""
        from stemscribe.transcription.programs import ProgramClassifier

        with self._lock:
            if self._programs is None:
                wanted = self.programs and self.families and ProgramClassifier.available(self.program_weights)
                self._programs = (
                    ProgramClassifier(self.program_weights, threads=self.threads or 0) if wanted else False
                )
            return self._programs or None

    def _mix_instrument(
        self,
        family: Family,
        notes: list[NoteEvent],
        mono22: npt.NDArray[np.float32],
        features: npt.NDArray[np.float32] | None = None,
    ) -> Instrument:
        """An instrument of a mix, named with the program of its family that its notes in (n,) mono
        22.05 kHz audio sound most like (`programs.ProgramClassifier.pick`; `features`, the notes' timbre
        features when already made); vocals stay "Synth Voice", and without the program model every
        family keeps its default program."""
        classifier = self.program_model
        if classifier is None or not notes or family in (Family.DRUMS, Family.VOCALS):
            return _instrument(family, notes)
        if features is None:
            features = notes_features(mono22, notes)
        return _instrument(family, notes, program=classifier.pick_features(features, family))

    @property
    def verifier(self) -> Any:
        """The note verifier, or None (weights not shipped, or verify=False: thresholds decide alone)."""
        from stemscribe.transcription.verify import NoteVerifier

        with self._lock:
            if self._verifier is None:
                self._verifier = NoteVerifier() if self.verify and NoteVerifier.available() else False
            return self._verifier or None

    def _get_separator(self) -> Separator:
        with self._lock:
            if self._separator is None:
                self._separator = get_separator(self.separator or "hpss")
            return self._separator

    # -- entry points ------------------------------------------------------------------------------
    def transcribe(
        self,
        source: AudioSource | Audio | tuple[npt.ArrayLike, int],
        *,
        stem: str | StemType = "auto",
        progress: ProgressCallback | None = None,
    ) -> Result:
        """Transcribe a path, bytes, stream, Audio or (array, sample_rate) pair."""
        stem_type = StemType.parse(stem)
        report(progress, "loading", 0.0)
        name: str | None = None
        # Model separators want the original stereo; everything else runs on 22.05 kHz mono, which
        # keeps a 10-minute song's memory small.
        keep = self.separator not in (None, "hpss") and stem_type in (StemType.MIX, StemType.AUTO)
        sr_out, mono = (None, False) if keep else (SAMPLE_RATE, True)
        if isinstance(source, Audio):
            audio = from_array(
                source.samples, source.sr, sr=sr_out, mono=mono, max_duration=self.max_duration
            )
        elif isinstance(source, tuple):
            samples, sr = source
            audio = from_array(samples, int(sr), sr=sr_out, mono=mono, max_duration=self.max_duration)
        else:
            name = str(source) if isinstance(source, (str, Path)) else None
            audio = load_audio(source, sr=sr_out, mono=mono, max_duration=self.max_duration)
        report(progress, "loading", 0.05)
        result = self._transcribe_audio(audio, stem_type, progress)
        result.source = name
        report(progress, "done", 1.0)
        return result

    def transcribe_file(
        self, path: str | Path, *, stem: str | StemType = "auto", progress: ProgressCallback | None = None
    ) -> Result:
        return self.transcribe(Path(path), stem=stem, progress=progress)

    def transcribe_array(
        self,
        samples: npt.ArrayLike,
        sr: int,
        *,
        stem: str | StemType = "auto",
        progress: ProgressCallback | None = None,
    ) -> Result:
        return self.transcribe((samples, sr), stem=stem, progress=progress)

    # -- stages ------------------------------------------------------------------------------------
    def _pitched(self, mono: npt.NDArray[np.float32]) -> tuple[Posteriors, npt.NDArray[np.float32]]:
        post = self.pitch_model.run(mono, contour=self.pitch_bends)
        return post, frame_loudness(mono, post.n_frames)

    def _decode_stem(self, analysis: _Analysis, stem: StemType) -> list[NoteEvent]:
        if stem is StemType.DRUMS:
            # A separator's drum stem too: the "mix" thresholds are tuned on the built-in split's part.
            return self.drum_model.transcribe(analysis.mono22, SAMPLE_RATE, kind="stem")
        if self.uses_network(stem):
            return self._network_stem(analysis, stem)
        post, loud = analysis.pitched
        verifier = self.verifier
        if verifier is None:
            notes = stem_notes(post, loud, stem)
        else:
            strict, candidates = stem_decodings(post, loud, stem, (1.0, CANDIDATE_RELAX))
            notes = verifier.keep(post, loud, candidates, strict, stem.value)
        return self._events(post, self._network_ends(analysis, stem, notes))

    def _network_ends(self, analysis: _Analysis, stem: StemType, notes: NoteArrays) -> NoteArrays:
        """basic-pitch's `notes` of a stem, ending where the network hears them end when the stem type
        is in `NETWORK_END_RATIO` and the network is loaded (engine "auto"); as they are
        otherwise. A line stays a line: no note then runs past the next one's start."""
        ratio = NETWORK_END_RATIO.get(stem)
        if ratio is None or not len(notes) or (network := self.network) is None:
            return notes
        fp, _ = self._stem_posteriors(analysis)
        frame = network.thresholds()["pitch"][1]
        order = np.argsort(notes.start, kind="stable")
        line = bool(np.all(notes.end[order][:-1] <= notes.start[order][1:]))
        options = DecodeOptions(frame_threshold=frame, offset_ratio=ratio)
        return ends_from_frames(fp.frame[:, 0, :], notes, options, line=line)

    def _network_stem(self, analysis: _Analysis, stem: StemType) -> list[NoteEvent]:
        """A stem's notes from the network, whoever it hears play them (the caller names the family)."""
        fp, loud = self._stem_posteriors(analysis)
        return to_events(family_notes(fp, 0, loud, self._network_options(stem)))

    def stem_posteriors(
        self, samples: npt.NDArray[np.float32]
    ) -> tuple[FamilyPosteriors, npt.NDArray[np.float32]]:
        """The network's posteriors of (n,) mono 22.05 kHz audio with the families pooled
        (`pitch_posteriors`), and its per-frame loudness: what a stem's notes (and a mix's, before
        each gets a family) are decoded from; `training.transcriber.tune_offsets` tunes on them."""
        return self._stem_posteriors(_Analysis(self._pitched, samples))

    def _stem_posteriors(self, analysis: _Analysis) -> tuple[FamilyPosteriors, npt.NDArray[np.float32]]:
        if analysis.pooled is None:
            analysis.pooled = pitch_posteriors(self._posteriors(analysis)), analysis.pitched[1]
        return analysis.pooled

    def _posteriors(self, analysis: _Analysis, spectrum: SpectrumFn | None = None) -> FamilyPosteriors:
        network = self.network
        if network is None:
            raise ModelError("the transcription network is not loaded (engine 'basic-pitch', or no weights)")
        return network.posteriors(analysis.mono22, analysis.pitched[0], spectrum() if spectrum else None)

    def _network_options(self, stem: StemType) -> DecodeOptions:
        network = self.network
        assert network is not None
        onset, frame = network.thresholds()["pitch"]
        return network_decode_options(stem, onset, frame)

    def mix_notes(self, samples: npt.NDArray[np.float32]) -> MixNotes:
        """The network's notes of (n,) mono 22.05 kHz mix audio, whoever plays them, with what the
        network's family head and the timbre classifier say of each: the mix path up to the family
        choice (`FAMILY_BLEND`), which `training.transcriber.tune_mix` tunes from these."""
        analysis = _Analysis(self._pitched, samples)
        return self._mix_notes(analysis, self._posteriors(analysis), classify=True)

    def _mix_notes(self, analysis: _Analysis, fp: FamilyPosteriors, *, classify: bool) -> MixNotes:
        loud = analysis.pitched[1]
        notes = family_notes(pitch_posteriors(fp), 0, loud, self._network_options(StemType.MIX))
        shares = note_family_shares(fp, notes)  # (n, 9) the family head's, over each note's frames
        classifier = self.family_model if classify else None
        heard = features = None
        if classifier is not None and len(notes):
            # the timbre features once: the family classifier reads them here, the program model later
            features = notes_features(analysis.mono22, to_events(notes))
            heard = classifier.classify_features(features)
        return MixNotes(notes, shares, heard, features)

    def _network_instruments(self, analysis: _Analysis, fp: FamilyPosteriors) -> list[Instrument]:
        """One instrument per family heard in (pitched) audio: the network's notes, whoever plays them,
        each given the family that the network's family head and the timbre classifier agree on
        (`FAMILY_BLEND`), or with `MIX_DECODE == "split"` each family decoded from its own posteriors;
        `fp` is the network's posteriors of the audio (`_posteriors`)."""
        network = self.network
        assert network is not None
        by_family: dict[Family, NoteArrays] = {}
        features: dict[Family, npt.NDArray[np.float32]] = {}  # each family's notes' timbre features
        if MIX_DECODE == "split":
            loud = analysis.pitched[1]
            thresholds = network.thresholds()
            for k, family in enumerate(TIMBRE_FAMILIES):
                onset, frame = thresholds[family.value]
                by_family[family] = family_notes(
                    fp, k, loud, DecodeOptions(onset_threshold=onset, frame_threshold=frame)
                )
        else:
            mix = self._mix_notes(analysis, fp, classify=FAMILY_BLEND < 1.0)
            notes = mix.notes
            heard = None
            if mix.heard is not None:
                heard = smooth_family_probs(
                    mix.heard, notes.start, FAMILY_WINDOW, notes.pitch.astype(np.int64), FAMILY_PITCH_WINDOW
                )
            probs = note_families(mix.shares, heard, blend=FAMILY_BLEND)
            who = probs.argmax(axis=1) if len(notes) else np.zeros(0, np.int64)
            for k, family in enumerate(TIMBRE_FAMILIES):
                by_family[family] = notes.select(who == k)
                if mix.features is not None:
                    features[family] = mix.features[who == k]
        instruments = [
            self._mix_instrument(family, to_events(notes), analysis.mono22, features.get(family))
            for family, notes in by_family.items()
            if len(notes) >= MIN_FAMILY_NOTES
        ]
        return sorted(instruments, key=lambda i: list(Family).index(i.family))

    def _events(self, post: Posteriors, notes: NoteArrays) -> list[NoteEvent]:
        bends = pitch_bends(post, notes) if self.pitch_bends else None
        return to_events(notes, bends)

    def _transcribe_audio(self, audio: Audio, stem: StemType, progress: ProgressCallback | None) -> Result:
        mono22 = from_array(audio.mono, audio.sr, sr=SAMPLE_RATE, max_duration=self.max_duration).samples
        duration = audio.duration
        if mono22.shape[0] < SAMPLE_RATE:  # analysis windows need a second; notes keep true times
            mono22 = np.pad(mono22, (0, SAMPLE_RATE - mono22.shape[0]))
            audio = Audio(mono22, SAMPLE_RATE)
        silent = float(np.abs(mono22).max(initial=0.0)) < 1e-4
        if silent:
            return Result([], duration, stem.value, 120.0, [], "none")
        # A second thread takes the work that does not need the pitch model (the beat tracker's onset
        # envelope; in a mix the network's spectrum and the drums), so that numpy's single-threaded
        # stages overlap the pitched transcription.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stemscribe-side") as side:
            envelope = side.submit(onset_envelope, mono22)  # the beat tracker's part that needs only audio
            stem, separator_name, instruments = self._transcribe_pitched(audio, mono22, stem, progress, side)
            instruments = [i for i in (_clip(inst, duration) for inst in instruments) if i.notes]
            report(progress, "assigning", 0.95)
            # The beats last: the notes' onsets (kicks and bass above all) tell the beat from the off-beat.
            grid = track_beats(mono22, instruments, envelope=envelope.result())
        tempo = float(grid.tempo) if grid.tempo > 0 else 120.0
        return Result(instruments, duration, stem.value, tempo, grid.beats.tolist(), separator_name)

    def _transcribe_pitched(
        self,
        audio: Audio,
        mono22: npt.NDArray[np.float32],
        stem: StemType,
        progress: ProgressCallback | None,
        side: Executor,
    ) -> tuple[StemType, str, list[Instrument]]:
        """(stem type, separator name, instruments) of audible audio; `side` runs what can go alongside."""
        analysis = _Analysis(self._pitched, mono22)
        spectrum = None
        whole_mix = self.separator in (None, "hpss")
        if stem in (StemType.AUTO, StemType.MIX) and whole_mix and self.uses_network(StemType.MIX):
            # The network's spectrum needs only the audio: started before the stem is guessed (audio
            # of unknown kind is most often a mix), it is ready when the pitch model is done.
            spectrum = _Handover(side.submit(song_spectrum, mono22, n_output_frames(len(mono22))))
        if stem is StemType.AUTO:
            stem = self._guess_stem(analysis)
        if stem is StemType.MIX:
            return (stem, *self._transcribe_mix(audio, analysis, progress, side, spectrum))
        report(progress, "transcribing", 0.1)
        if stem is StemType.OTHER and self.uses_network(stem):
            return stem, "none", self._network_instruments(analysis, self._posteriors(analysis))
        notes = self._decode_stem(analysis, stem)
        family = self._stem_family(stem, analysis.mono22, notes)
        return stem, "none", [_instrument(family, notes)] if notes else []

    def _transcribe_mix(
        self,
        audio: Audio,
        analysis: _Analysis,
        progress: ProgressCallback | None,
        side: Executor,
        spectrum: _Handover[SongSpectrum] | None,
    ) -> tuple[str, list[Instrument]]:
        separator = self._get_separator()
        report(progress, "separating", 0.1)
        # The built-in split runs on mono and the mix is decoded whole; a model separator gets the
        # original channels and rate and gives instrument stems, each transcribed as that stem.
        if isinstance(separator, HPSSSeparator):
            return separator.name, self._transcribe_whole_mix(analysis, separator, progress, side, spectrum)

        def separating(_stage: str, fraction: float) -> None:
            report(progress, "separating", round(0.1 + 0.2 * fraction, 6))

        stems = separator.separate(audio, progress=separating)
        report(progress, "separating", 0.3)
        instruments: list[Instrument] = []
        for i, (stem_name, stem_audio) in enumerate(stems.items()):
            report(progress, "transcribing", 0.3 + 0.6 * i / max(1, len(stems)))
            stem_type = _SOURCE_STEM.get(stem_name, StemType.OTHER)
            mono = from_array(stem_audio.mono, stem_audio.sr, sr=SAMPLE_RATE).samples
            if float(np.abs(mono).max(initial=0.0)) < 1e-3:
                continue
            notes = self._decode_stem(_Analysis(self._pitched, mono), stem_type)
            family = self._stem_family(stem_type, mono, notes)
            instruments.append(self._mix_instrument(family, notes, mono))
        return separator.name, instruments

    def _transcribe_whole_mix(
        self,
        analysis: _Analysis,
        separator: HPSSSeparator,
        progress: ProgressCallback | None,
        side: Executor,
        spectrum: _Handover[SongSpectrum] | None,
    ) -> list[Instrument]:
        """A mix's instruments, its drums from the split's percussive part (on `side`, while the
        pitched instruments are decoded from the whole mix here); `spectrum` is the network's, when
        the network hears the mix."""

        def drums() -> list[NoteEvent]:
            percussive = analysis.hpss(separator)["drums"].samples
            analysis.release_hpss()  # a mix decoded whole needs nothing else of the split
            return self.drum_model.transcribe(percussive, SAMPLE_RATE, kind="mix")

        report(progress, "separating", 0.3)
        if self.uses_network(StemType.MIX):
            # The pitch model and the network first, each on every core; the drums then go beside
            # the decoding, which leaves a core free.
            report(progress, "transcribing", 0.35)
            fp = self._posteriors(analysis, spectrum.take if spectrum else None)
            drums_job = side.submit(drums)
            report(progress, "drums", 0.8)
            instruments = self._network_instruments(analysis, fp)
            del fp  # (n_frames, 9, 88) x 3: not held while the drums finish
            report(progress, "assigning", 0.9)
            return [*instruments, _instrument(Family.DRUMS, drums_job.result())]
        drums_job = side.submit(drums)
        report(progress, "drums", 0.35)
        report(progress, "transcribing", 0.45)
        # The pitch model hears the whole mix: on the benchmark it finds more of the right notes there
        # than in the harmonic part, whose masks also thin out plucked attacks.
        post, loud = analysis.pitched
        poly = mix_notes(post, loud)
        verifier = self.verifier
        if verifier is not None:
            poly = verifier.keep(post, loud, mix_notes(post, loud, relax=CANDIDATE_RELAX), poly, "mix")
        bass, lead = mix_lines(post, loud)
        report(progress, "assigning", 0.9)
        roles = assign_roles(poly, bass, lead)
        by_family: dict[Family, list[NoteEvent]] = {}
        features: dict[Family, list[npt.NDArray[np.float32]]] = {}  # the timbre features of its notes
        classifier = self.family_model
        for default, role_notes in (
            (Family.VOCALS, roles.lead),
            (Family.BASS, roles.bass),
            (Family.PIANO, roles.accompaniment),
        ):
            events = self._events(post, role_notes)
            if classifier is None or not events:
                by_family.setdefault(default, []).extend(events)
                continue
            # Who plays each note: the timbre classifier, steadied over the role's neighbouring notes.
            role_features = notes_features(analysis.mono22, events)
            probs = smooth_family_probs(
                classifier.classify_features(role_features), role_notes.start, FAMILY_WINDOW
            )
            if default is not Family.BASS:  # the bass line is the bass role's; others may not claim it
                probs[:, TIMBRE_FAMILIES.index(Family.BASS)] = 0.0
            who = probs.argmax(axis=1)
            for event, k in zip(events, who.tolist(), strict=True):
                by_family.setdefault(TIMBRE_FAMILIES[k], []).append(event)
            for k in np.unique(who).tolist():  # the program model reads them again (a mean: any order)
                features.setdefault(TIMBRE_FAMILIES[k], []).append(role_features[who == k])
        instruments = [
            self._mix_instrument(
                family,
                sorted(by_family[family], key=lambda n: (n.start, n.pitch)),
                analysis.mono22,
                np.concatenate(features[family]) if family in features else None,
            )
            for family in sorted(by_family, key=lambda f: list(Family).index(f))
        ]
        return [*instruments, _instrument(Family.DRUMS, drums_job.result())]

    def _stem_family(self, stem: StemType, mono22: npt.NDArray[np.float32], notes: list[NoteEvent]) -> Family:
        """The family a stem's notes are written as: the stem's own, or for `other` the timbre
        classifier's majority vote (piano when there is no classifier)."""
        if stem is StemType.DRUMS:
            return Family.DRUMS
        if stem in STEM_FAMILY:
            return STEM_FAMILY[stem]
        classifier = self.family_model
        if classifier is None or not notes:
            return Family.PIANO
        votes = np.bincount(classifier.classify(mono22, notes).argmax(axis=1), minlength=len(TIMBRE_FAMILIES))
        return TIMBRE_FAMILIES[int(votes.argmax())]

    def _guess_stem(self, analysis: _Analysis) -> StemType:
        """Decide what `auto` audio holds from its percussive share and its pitch content."""
        parts = analysis.hpss()
        e_perc = float(np.mean(parts["drums"].samples ** 2))
        e_harm = float(np.mean(parts["harmonic"].samples ** 2))
        share = e_perc / max(e_perc + e_harm, 1e-12)
        if share > 0.6:
            return StemType.DRUMS
        post, _ = analysis.pitched
        active = post.note >= 0.5
        voiced = active.any(axis=1)
        if not voiced.any():
            return StemType.MIX
        polyphony = float(active[voiced].sum(axis=1).mean())
        if share < 0.25 and polyphony < 1.5:
            pitches = np.nonzero(active)[1] + 21
            return StemType.BASS if float(np.median(pitches)) < 50 else StemType.VOCALS
        return StemType.MIX


_DEFAULT: Transcriber | None = None
_DEFAULT_LOCK = threading.Lock()


def transcribe(
    source: AudioSource | Audio | tuple[npt.ArrayLike, int],
    stem: str | StemType = "auto",
    *,
    progress: ProgressCallback | None = None,
    **options: Any,
) -> Result:
    """Transcribe `source` with a shared default Transcriber (or a new one when options are given)."""
    global _DEFAULT
    if options:
        return Transcriber(**options).transcribe(source, stem=stem, progress=progress)
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = Transcriber()
    return _DEFAULT.transcribe(source, stem=stem, progress=progress)
