"""The GM program classifier: its programs per family, a tiny export's shapes and metadata, and the
mix path naming instruments with it (or with each family's default without weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stemscribe.errors import ModelError
from stemscribe.result import NoteEvent
from stemscribe.stems import FAMILY_PROGRAM, Family, family_of_program, gm_program_name
from stemscribe.transcription.pipeline import Transcriber
from stemscribe.transcription.programs import N_PROGRAMS, ProgramClassifier, family_mask, family_programs
from stemscribe.transcription.timbre import N_FEATURES, TIMBRE_FAMILIES
from tests.conftest import export_firing_network, melody

torch = pytest.importorskip("torch", reason="exporting the test models needs torch (the train extra)")

from training.program.export import export_net  # noqa: E402
from training.timbre.train import FamilyNet  # noqa: E402

SR = 22050
# The program each family's logits favour in the test weights: none of them a family default.
FAVOURED = {
    Family.BASS: 38,
    Family.PIANO: 2,
    Family.GUITAR: 29,
    Family.KEYS: 11,
    Family.STRINGS: 42,
    Family.BRASS: 57,
    Family.WINDS: 71,
    Family.SYNTH: 90,
    Family.VOCALS: 52,
}


def test_family_programs_partition_the_pitched_programs() -> None:
    seen = [p for f in TIMBRE_FAMILIES for p in family_programs(f)]
    assert sorted(seen) == list(range(112))
    assert family_programs(Family.GUITAR) == (*range(24, 32), *range(104, 112))
    assert 55 in family_programs(Family.STRINGS) and family_programs(Family.VOCALS) == (52, 53, 54)
    mask = family_mask()
    assert mask.shape == (len(Family), N_PROGRAMS) and (mask.sum(axis=0) == 1).all()
    for f in TIMBRE_FAMILIES:  # keys' default, Electric Piano 1, sits in GM's piano group
        assert (FAMILY_PROGRAM[f] in family_programs(f)) is (f is not Family.KEYS)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random net whose output bias favours `FAVOURED` in every family."""
    torch.manual_seed(0)
    net = FamilyNet(N_FEATURES, 16, 0.0, n_out=N_PROGRAMS).eval()
    with torch.no_grad():
        net.net[-1].weight.mul_(0.01)
        net.net[-1].bias.zero_()
        for p in FAVOURED.values():
            net.net[-1].bias[p] = 8.0
    path = tmp_path_factory.mktemp("program") / "program.onnx"
    export_net(net, path, {"epoch": "0", "seed": "0"})
    return path


@pytest.fixture(scope="module")
def network_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Transcription-network weights whose onset and frame heads fire everywhere."""
    return export_firing_network(tmp_path_factory.mktemp("net") / "transcriber.onnx")


def test_export_shapes_metadata_and_picks(weights: Path) -> None:
    import onnx

    model = onnx.load(str(weights))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["n_programs"] == "128" and meta["n_features"] == str(N_FEATURES)
    assert weights.stat().st_size < 1_000_000 and weights.with_name("program.onnx.sha256").is_file()
    clf = ProgramClassifier(weights)
    x = np.random.default_rng(0).standard_normal((7, N_FEATURES)).astype(np.float32)
    assert clf.logits(x).shape == (7, N_PROGRAMS) and clf.logits(x[:0]).shape == (0, N_PROGRAMS)
    for family in TIMBRE_FAMILIES:
        probs = clf.probabilities(x, family)
        assert probs.shape == (7, len(family_programs(family)))
        assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    audio = melody([(45, 0.2, 0.8), (52, 0.9, 1.5)], 2.0)
    notes = [NoteEvent(45, 0.2, 0.8, 0.8), NoteEvent(52, 0.9, 1.5, 0.8)]
    assert clf.pick(audio, Family.BASS, notes) == FAVOURED[Family.BASS]
    with pytest.raises(ValueError):
        clf.pick(audio, Family.BASS, [])


def test_damaged_weights_are_a_model_error(weights: Path, tmp_path: Path) -> None:
    bad = tmp_path / "program.onnx"
    bad.write_bytes(weights.read_bytes())
    (tmp_path / "program.onnx.sha256").write_text("0" * 64 + "  program.onnx\n")
    with pytest.raises(ModelError, match="damaged"):
        ProgramClassifier(bad)
    with pytest.raises(ModelError, match="not found"):
        ProgramClassifier(tmp_path / "absent.onnx")


def _mix() -> np.ndarray:
    return melody([(40, 0.2, 1.0), (64, 0.5, 1.5), (67, 1.0, 2.0), (72, 1.6, 2.6)], 3.0)


def test_mix_instruments_are_named_with_the_program_model(weights: Path, network_weights: Path) -> None:
    tr = Transcriber(engine="network", network_weights=network_weights, program_weights=weights)
    pitched = [i for i in tr.transcribe((_mix(), SR), stem="mix").instruments if not i.is_drum]
    assert pitched
    for inst in pitched:
        assert family_of_program(inst.program) is inst.family
        if inst.family is Family.VOCALS:  # a vocal line stays Synth Voice, as Suno names it
            assert (inst.name, inst.program) == ("Synth Voice", 54)
        else:
            assert inst.program == FAVOURED[inst.family]
            assert inst.name == gm_program_name(inst.program)


def test_without_program_weights_each_family_keeps_its_default(
    weights: Path, network_weights: Path, tmp_path: Path
) -> None:
    for tr in (
        Transcriber(engine="network", network_weights=network_weights, program_weights=tmp_path / "no.onnx"),
        Transcriber(
            engine="network", network_weights=network_weights, program_weights=weights, programs=False
        ),
    ):
        assert tr.program_model is None
        pitched = [i for i in tr.transcribe((_mix(), SR), stem="mix").instruments if not i.is_drum]
        assert pitched
        for inst in pitched:
            assert inst.program == FAMILY_PROGRAM[inst.family]
