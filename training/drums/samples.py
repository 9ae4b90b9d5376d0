"""Recorded drum kits for the drum training data: Hydrogen's kits and LMMS's one-shot drums.

Sources read here, and only these (both training material; none of them is held out):
- Debian `hydrogen-drumkits`: the kits under `HYDROGEN_KITS` (Audiophob, BJA_Pacific, Colombo,
  ElectricEmpire, ForzeeStereo, Gimme A Hand, HardElectro1, Millo (three), The Black Pearl, VariBreaks,
  circAfrique, rumpf). Each `drumkit.xml` names its instruments and their velocity layers (a WAV or
  FLAC file and the velocity range 0..1 it plays for).
- Debian `lmms-common`: the one-shot drums under `LMMS_DRUMS`, put together into one kit whose keys
  each draw one of the matching files per clip.

`SAMPLE_NAME_RULES` (our own table) maps an instrument's name to a General MIDI percussion key; a name
that matches no rule plays, when the pattern asks for a key of no class, as an unlabelled distractor
(finger snaps, water glasses, cajon, zaps, dunun drums and bells); `SKIP` names (rolls, chokes, whole
loop slices) are not played at all, as one hit of them is not one onset.

Each clip varies every instrument it uses: pitch (resampled by up to ±2 semitones), gain (±4 dB), a
shortened decay now and then, and a small random gain per hit; an open hat is choked by the next closed
or pedal hat, as a real hi-hat is.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from stemscribe.transcription.drum_model import SAMPLE_RATE
from stemscribe.transcription.drums import KEY_TO_CLASS

log = logging.getLogger(__name__)

HYDROGEN_KITS = Path("/usr/share/hydrogen/data/drumkits")
LMMS_DRUMS = Path("/usr/share/lmms/samples/drums")
SKIP = -1
MAX_SECONDS = 2.5  # samples are cut (with a fade) after this long: cymbals ring out anyway
HAT_KEYS = (42, 44, 46)
# Peak level of a key's instrument relative to the kick and snare (each instrument is normalised to
# peak 1 first), about as General MIDI kits balance them: hats and auxiliary percussion sit lower.
KEY_LEVEL = {42: 0.45, 44: 0.4, 46: 0.6, 49: 0.8, 51: 0.6, 52: 0.8, 53: 0.6, 55: 0.7, 57: 0.8, 37: 0.6}
AUX_LEVEL = 0.7

# (pattern, GM key) in order, the first match wins; names are matched lower-cased. SKIP: never played.
SAMPLE_NAME_RULES: tuple[tuple[str, int], ...] = (
    (r"^sample:|roll|choke|swish|^\d+$|^$|- *$", SKIP),
    (r"tambourine", 54),
    (r"hat.*pedal|pedal.*h|hh pd|hat 1 pd|foot|hat low", 44),
    (r"hat.*(open|op\b|opened|semi|free|ring)|open.*h|side ohh|hihat_opened", 46),
    (r"hat|hh", 42),
    (r"bass ?drum|kick", 36),
    (r"rim ?click|side ?stick|sidestick|^stick$|c#3 - stick|^rim\d|nasty_rim", 37),
    (r"clap", 39),
    (r"snare", 38),
    (r"floor|tom low|low tom|tom_low|tom 2 ", 43),
    (r"tom ?hi|high tom|tom high|tom 1\b|tom_hi", 50),
    (r"tom mid|middle tom|tom_mid|tom 2|^tom$", 47),
    (r"(ride|crash/ride).*(bell|cup)|paiste bell|ride bell", 53),
    (r"china", 52),
    (r"splash", 55),
    (r"crash/ride bow|ride", 51),
    (r"crash", 49),
    (r"cymbal", 57),
    (r"cowbell", 56),
    (r"agogo (high|hi)", 67),
    (r"agogo", 68),
    (r"maraca|shaker", 70),
    (r"bongo hi", 60),
    (r"bongo", 61),
    (r"conga 1|djembe\d (slap|tone)", 63),
    (r"conga", 64),
    (r"clave|clav\d", 75),
    (r"woodblock lo", 77),
    (r"woodblock|wood\d", 76),
    (r"whistle", 71),
)


def key_of_name(name: str) -> int | None:
    """The GM key an instrument named `name` plays as; None: a distractor; SKIP: never played."""
    low = name.strip().lower()
    for pattern, key in SAMPLE_NAME_RULES:
        if re.search(pattern, low):
            return key
    return None


@dataclass(frozen=True)
class Layer:
    """One velocity layer: plays for velocities lo..hi (0..1) at `gain`; `file` decoded lazily."""

    lo: float
    hi: float
    gain: float
    file: Path


@dataclass(frozen=True)
class Instrument:
    name: str
    key: int | None  # GM key, or None for a distractor
    layers: tuple[Layer, ...]
    gain: float = 1.0


@dataclass(frozen=True)
class SampleKit:
    name: str
    instruments: tuple[Instrument, ...]

    def keys(self) -> frozenset[int]:
        """The GM keys the kit can play."""
        return frozenset(i.key for i in self.instruments if i.key is not None)

    def distractors(self) -> tuple[Instrument, ...]:
        return tuple(i for i in self.instruments if i.key is None)


def _strip(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem: ET.Element, name: str) -> str | None:
    for c in elem:
        if _strip(c.tag) == name:
            return c.text
    return None


def _float(text: str | None, default: float) -> float:
    try:
        return float(text) if text is not None else default
    except ValueError:
        return default


def _readable(path: Path) -> bool:
    """Whether `path` exists and its header decodes (LMMS ships a kick whose header is malformed)."""
    import soundfile as sf

    try:
        sf.info(str(path))
    except (OSError, RuntimeError, sf.LibsndfileError):
        return False
    return True


def parse_hydrogen_kit(folder: Path) -> SampleKit:
    """The kit that `folder/drumkit.xml` describes (instruments without a readable file left out)."""
    root = ET.parse(folder / "drumkit.xml").getroot()
    instruments = []
    for elem in root.iter():
        if _strip(elem.tag) != "instrument":
            continue
        name = _child(elem, "name") or ""
        key = key_of_name(name)
        if key == SKIP or (_child(elem, "isMuted") or "").strip() == "true":
            continue
        layers = []
        for sub in elem.iter():
            if _strip(sub.tag) == "layer":
                fn = _child(sub, "filename")
                if fn and _readable(folder / fn):
                    layers.append(
                        Layer(
                            _float(_child(sub, "min"), 0.0),
                            _float(_child(sub, "max"), 1.0),
                            _float(_child(sub, "gain"), 1.0),
                            folder / fn,
                        )
                    )
        direct = _child(elem, "filename")  # the old format: one file, no layers
        if not layers and direct and _readable(folder / direct):
            layers.append(Layer(0.0, 1.0, 1.0, folder / direct))
        if layers:
            gain = _float(_child(elem, "gain"), 1.0) * _float(_child(elem, "volume"), 1.0)
            instruments.append(Instrument(name, key, tuple(sorted(layers, key=lambda x: x.lo)), gain))
    return SampleKit(folder.name, tuple(instruments))


def lmms_kit(folder: Path = LMMS_DRUMS) -> SampleKit:
    """LMMS's one-shot drums as one kit: each file an instrument (several per key; a clip picks one)."""
    instruments = []
    for path in sorted(folder.glob("*.ogg")):
        key = key_of_name(path.stem)
        if key == SKIP or re.fullmatch(r"tom\d+", path.stem) or not _readable(path):  # toms of unknown pitch
            continue
        instruments.append(Instrument(path.stem, key, (Layer(0.0, 1.0, 1.0, path),)))
    return SampleKit("lmms", tuple(instruments))


def installed_sample_kits() -> list[SampleKit]:
    """Every Hydrogen kit and the LMMS kit that are installed here and play at least a kick or snare."""
    kits = []
    if HYDROGEN_KITS.is_dir():
        for folder in sorted(HYDROGEN_KITS.iterdir()):
            if (folder / "drumkit.xml").is_file():
                kits.append(parse_hydrogen_kit(folder))
    if LMMS_DRUMS.is_dir():
        kits.append(lmms_kit())
    return [k for k in kits if k.keys()]


def _decode(path: Path) -> npt.NDArray[np.float32]:
    """(n,) mono float32 at SAMPLE_RATE, at most MAX_SECONDS (faded out), peak 1."""
    import soundfile as sf

    from stemscribe.audio import resample

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = data.mean(axis=1)
    x = x[: int(MAX_SECONDS * sr)]
    x = resample(np.ascontiguousarray(x), int(sr), SAMPLE_RATE).astype(np.float32)
    fade = min(len(x), int(0.05 * SAMPLE_RATE))
    if fade:
        x[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    # Trim leading silence so the onset sits where the hit is placed.
    above = np.flatnonzero(np.abs(x) > 0.02 * (np.abs(x).max() + 1e-9))
    if above.size:
        x = x[max(0, int(above[0]) - 16) :]
    return x


SHAKER_KEYS = frozenset(k for k, c in KEY_TO_CLASS.items() if c == 70)  # the shaker class (69, 70, 82)


def synth_shaker(rng: np.random.Generator) -> _Voice:
    """A shaker of our own: band-passed noise with a soft attack and a short decay, one take per
    velocity band (a harder shake is brighter), so the shaker class is not learnt from the few recorded
    and SoundFont shakers alone. Drawn afresh per clip: lower band edge 2.5..7 kHz, attack 3..30 ms,
    decay 15..90 ms, and now and then a second grain (the beads' return) 25..70 ms after the first."""
    from scipy.signal import butter, sosfilt

    lo = float(rng.uniform(2500.0, 7000.0))
    width = float(rng.uniform(1.4, 3.0))
    attack = float(rng.uniform(0.003, 0.03))
    decay = float(rng.uniform(0.015, 0.09))
    echo = float(rng.uniform(0.025, 0.07)) if rng.random() < 0.4 else 0.0
    n = int((attack + 6 * decay + echo) * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    grain = np.minimum(t / attack, 1.0) * np.exp(-np.maximum(t - attack, 0.0) / decay)
    if echo:
        late = np.clip(t - echo, 0.0, None)
        grain = grain + 0.5 * (t >= echo) * np.minimum(late / attack, 1.0) * np.exp(-late / decay)
    layers = []
    for band, (v_lo, v_hi) in enumerate(((0.0, 0.4), (0.4, 0.7), (0.7, 1.0))):
        f_lo = lo * (1.0 + 0.15 * band)
        f_hi = min(f_lo * width, 0.45 * SAMPLE_RATE)
        sos = butter(4, [f_lo, f_hi], btype="band", fs=SAMPLE_RATE, output="sos")
        x = sosfilt(sos, rng.standard_normal(n)) * grain
        x = (x / (np.abs(x).max() + 1e-9)).astype(np.float32)
        layers.append((v_lo, v_hi, 0.6 + 0.2 * band, x))
    gain = AUX_LEVEL * float(10 ** (rng.uniform(-4, 4) / 20))
    return _Voice([(lo_, hi_, g * gain, a) for lo_, hi_, g, a in layers])


def _level(key: int) -> float:
    if key in KEY_LEVEL:
        return KEY_LEVEL[key]
    return 1.0 if key < 54 and key not in (39,) else AUX_LEVEL


@dataclass
class _Voice:
    """One instrument as a clip plays it: its layers' audio pitched, gained and enveloped."""

    layers: list[tuple[float, float, float, npt.NDArray[np.float32]]]  # lo, hi, gain, audio

    def hit(self, velocity: float, rng: np.random.Generator) -> npt.NDArray[np.float32]:
        fits = [la for la in self.layers if la[0] <= velocity <= la[1] + 1e-6]
        nearest = min(self.layers, key=lambda la: abs(la[0] + la[1] - 2 * velocity))
        _, _, gain, audio = fits[0] if fits else nearest
        amp = gain * (0.15 + 0.85 * velocity**1.6) * float(10 ** (rng.normal(0, 0.7) / 20))
        return audio * np.float32(amp)


class SampleRenderer:
    """Plays drum events through recorded sample kits (decoded files cached across clips)."""

    def __init__(self, kits: list[SampleKit] | None = None) -> None:
        self.kits = installed_sample_kits() if kits is None else kits
        self._audio: dict[Path, npt.NDArray[np.float32]] = {}
        self._peak: dict[Path, float] = {}

    def audio(self, path: Path) -> npt.NDArray[np.float32]:
        if path not in self._audio:
            self._audio[path] = _decode(path)
        return self._audio[path]

    def pick_kit(self, rng: np.random.Generator) -> SampleKit:
        return self.kits[int(rng.integers(len(self.kits)))]

    def voices(self, kit: SampleKit, rng: np.random.Generator) -> tuple[dict[int, _Voice], list[_Voice]]:
        """This clip's voice per GM key (one instrument drawn where several play a key) and the
        distractor voices."""
        by_key: dict[int, list[Instrument]] = {}
        for inst in kit.instruments:
            if inst.key is not None:
                by_key.setdefault(inst.key, []).append(inst)
        voices = {k: self._voice(v[int(rng.integers(len(v)))], rng, _level(k)) for k, v in by_key.items()}
        return voices, [self._voice(i, rng, AUX_LEVEL) for i in kit.distractors()]

    def _voice(self, inst: Instrument, rng: np.random.Generator, level: float) -> _Voice:
        from scipy.signal import resample_poly

        semitones = float(rng.uniform(-2.0, 2.0)) if rng.random() < 0.6 else 0.0
        gain_db = float(rng.uniform(-4, 4))
        decay = float(rng.uniform(0.15, 1.0)) if rng.random() < 0.25 else None
        layers = []
        for layer in inst.layers:
            x = self.audio(layer.file)
            if semitones:
                up = 100
                down = int(round(up * 2 ** (semitones / 12)))
                x = resample_poly(x, up, down).astype(np.float32)
            if decay is not None:
                t = np.arange(len(x), dtype=np.float32) / SAMPLE_RATE
                x = x * np.exp(-t / np.float32(decay)).astype(np.float32)
            layers.append((layer.lo, layer.hi, layer.gain, x))
        # The instrument's loudest layer at peak 1 (kits record at wildly varying levels).
        peak = max(float(np.abs(a).max(initial=0.0)) * g for _, _, g, a in layers) + 1e-9
        scale = level * float(10 ** (gain_db / 20)) / peak
        return _Voice([(lo, hi, g * scale, a) for lo, hi, g, a in layers])

    def render(
        self,
        kit: SampleKit,
        events: list[tuple[float, int, int]],
        seconds: float,
        rng: np.random.Generator,
        synth: frozenset[int] = frozenset(),
    ) -> npt.NDArray[np.float32]:
        """(n,) mono audio of (time s, GM key, velocity 1..127) hits through `kit`, `seconds` long.

        Keys of the kit play its instrument; keys outside the kit and outside every class play one of
        the kit's distractors (fixed per key in a clip); other keys are silent (the caller plays them).
        The `synth` keys (of `SHAKER_KEYS`) play one `synth_shaker` of this clip instead.
        """
        voices, distractors = self.voices(kit, rng)
        if synth:
            shaker = synth_shaker(rng)
            voices.update({k: shaker for k in synth})
        n = int(round(seconds * SAMPLE_RATE))
        out = np.zeros(n, np.float32)
        stray: dict[int, _Voice] = {}
        hats = sorted((t, k) for t, k, _ in events if k in HAT_KEYS and k in voices)
        for t, key, vel in sorted(events):
            voice = voices.get(key)
            if voice is None:
                if not distractors or key in KEY_TO_CLASS:
                    continue
                if key not in stray:
                    stray[key] = distractors[int(rng.integers(len(distractors)))]
                voice = stray[key]
            s = int(round(t * SAMPLE_RATE))
            if s >= n:
                continue
            x = voice.hit(vel / 127.0, rng)
            if key == 46:  # choked by the next closed or pedal hat
                nxt = next((u for u, k in hats if u > t + 1e-4 and k in (42, 44)), None)
                if nxt is not None:
                    stop = int((nxt - t) * SAMPLE_RATE)
                    if stop < len(x):
                        fade = min(len(x) - stop, int(0.02 * SAMPLE_RATE))
                        x = x[: stop + fade].copy()
                        x[stop:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
            m = min(len(x), n - s)
            out[s : s + m] += x[:m]
        return out
