"""Stem types (what the caller says the audio is) and instrument families (what a note is played on)."""

from __future__ import annotations

from enum import Enum

from stemscribe.errors import InvalidOptionError


class StemType(str, Enum):
    """What the input audio holds; `auto` lets stemscribe decide from the audio."""

    AUTO = "auto"
    MIX = "mix"
    VOCALS = "vocals"
    DRUMS = "drums"
    BASS = "bass"
    PIANO = "piano"
    GUITAR = "guitar"
    KEYS = "keys"
    STRINGS = "strings"
    BRASS = "brass"
    WINDS = "winds"
    SYNTH = "synth"
    OTHER = "other"

    @classmethod
    def parse(cls, value: str | StemType) -> StemType:
        """Return the stem type named by `value`, or raise InvalidOptionError listing the valid names."""
        if isinstance(value, StemType):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise InvalidOptionError(f"unknown stem type {value!r}; choose one of: {names}") from None


class Family(str, Enum):
    """Instrument families, the unit of instrument-aware scoring and of instrument naming."""

    DRUMS = "drums"
    BASS = "bass"
    PIANO = "piano"
    GUITAR = "guitar"
    KEYS = "keys"
    STRINGS = "strings"
    BRASS = "brass"
    WINDS = "winds"
    SYNTH = "synth"
    VOCALS = "vocals"


# General MIDI program (0-based) ranges of each family.
_GM_FAMILY_RANGES: tuple[tuple[range, Family], ...] = (
    (range(0, 8), Family.PIANO),
    (range(8, 24), Family.KEYS),  # chromatic percussion and organs
    (range(24, 32), Family.GUITAR),
    (range(32, 40), Family.BASS),
    (range(40, 52), Family.STRINGS),  # strings, ensembles, orchestra hit excluded below
    (range(52, 56), Family.VOCALS),  # choir aahs, voice oohs, synth voice, orchestra hit
    (range(56, 64), Family.BRASS),
    (range(64, 80), Family.WINDS),  # reeds and pipes
    (range(80, 104), Family.SYNTH),  # synth leads, pads, effects
    (range(104, 112), Family.GUITAR),  # ethnic plucked (sitar, banjo, shamisen, koto, ...)
    (range(112, 128), Family.DRUMS),  # percussive programs
)

# The program and the General MIDI name stemscribe writes for a family.
FAMILY_PROGRAM: dict[Family, int] = {
    Family.BASS: 33,  # Electric Bass (finger)
    Family.PIANO: 0,  # Acoustic Grand Piano
    Family.GUITAR: 25,  # Acoustic Guitar (steel)
    Family.KEYS: 4,  # Electric Piano 1
    Family.STRINGS: 48,  # String Ensemble 1
    Family.BRASS: 61,  # Brass Section
    Family.WINDS: 73,  # Flute
    Family.SYNTH: 81,  # Lead 2 (sawtooth)
    Family.VOCALS: 54,  # Synth Voice, as Suno's own MIDI names vocals
    Family.DRUMS: 0,
}

STEM_FAMILY: dict[StemType, Family] = {
    StemType.VOCALS: Family.VOCALS,
    StemType.DRUMS: Family.DRUMS,
    StemType.BASS: Family.BASS,
    StemType.PIANO: Family.PIANO,
    StemType.GUITAR: Family.GUITAR,
    StemType.KEYS: Family.KEYS,
    StemType.STRINGS: Family.STRINGS,
    StemType.BRASS: Family.BRASS,
    StemType.WINDS: Family.WINDS,
    StemType.SYNTH: Family.SYNTH,
}


def family_of_program(program: int, *, is_drum: bool = False) -> Family:
    """Return the family of a General MIDI program (0-127); drum-channel parts are drums."""
    if is_drum:
        return Family.DRUMS
    if program == 55:  # Orchestra Hit
        return Family.STRINGS
    for programs, family in _GM_FAMILY_RANGES:
        if program in programs:
            return family
    raise InvalidOptionError(f"General MIDI program out of range: {program}")


def gm_program_name(program: int) -> str:
    """Return the General MIDI name of a program, as pretty_midi spells it."""
    import pretty_midi

    return str(pretty_midi.program_to_instrument_name(program))
