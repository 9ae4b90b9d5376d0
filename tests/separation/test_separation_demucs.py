"""The Demucs backend on tiny random-weight HTDemucs models installed where `models fetch` puts them."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from stemscribe.audio import Audio
from stemscribe.errors import InvalidOptionError, ModelError, SeparationUnavailableError
from stemscribe.separation import demucs_available, select_stems
from stemscribe.separation.base import Separator, get_separator, separator_names
from stemscribe.separation.weights import models_dir

pytestmark = pytest.mark.separation

torch = pytest.importorskip(
    "torch", reason="needs the separation extra: pip install 'stemscribe[separation]'"
)
pytest.importorskip("demucs", reason="needs the separation extra: pip install 'stemscribe[separation]'")

from demucs.apply import apply_model  # noqa: E402

from stemscribe.separation.demucs import DemucsSeparator  # noqa: E402

SR = 8000  # the tiny models' rate


def noise(seconds: float, *, sr: int = SR, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((channels, int(seconds * sr))).astype(np.float32) * 0.1
    return x[0] if channels == 1 else x


def reference(model: object, mix: np.ndarray, *, overlap: float) -> np.ndarray:
    """Demucs' own `apply_model(split=True)` on the whole mix, normalised as in stemscribe."""
    ref = mix.mean(axis=0)
    mean, std = float(ref.mean()), float(ref.std(ddof=1)) + 1e-8
    x = torch.from_numpy((mix - mean) / std)[None]
    with torch.no_grad():
        out = apply_model(model, x, shifts=0, split=True, overlap=overlap)[0].numpy()
    return out * std + mean / out.shape[0]


class Proportional(torch.nn.Module):
    """A model whose stems sum to its input: each stem is a fixed share of the mix."""

    def __init__(self, shares: list[float], segment: float = 1.0) -> None:
        super().__init__()
        self.sources = [f"s{i}" for i in range(len(shares))]
        self.samplerate, self.audio_channels, self.segment = SR, 2, segment
        self.register_buffer("shares", torch.tensor(shares, dtype=torch.float32))
        self.lengths: list[int] = []

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        self.lengths.append(mix.shape[-1])
        return mix[:, None] * self.shares[None, :, None, None]


def test_registered_without_importing_torch_eagerly() -> None:
    assert {"demucs", "htdemucs", "htdemucs_6s", "hpss"} <= set(separator_names())


def test_stems_have_the_input_shape_and_rate(install_tiny: Callable[..., object]) -> None:
    install_tiny("tiny")
    separator = get_separator("demucs", model="tiny", device="cpu")
    assert isinstance(separator, Separator) and separator.name == "demucs"
    assert separator.stem_names() == ("drums", "bass", "other", "vocals")

    stereo = separator.separate(Audio(noise(1.7), SR))
    assert list(stereo) == ["drums", "bass", "other", "vocals"]
    for stem in stereo.values():
        assert stem.sr == SR and stem.samples.shape == (2, int(1.7 * SR)) and stem.samples.dtype == np.float32
        assert np.all(np.isfinite(stem.samples)) and np.abs(stem.samples).max() > 0

    mono = separator.separate(Audio(noise(1.3, sr=22050, channels=1), 22050))
    for stem in mono.values():
        assert stem.sr == 22050 and stem.samples.shape == (int(1.3 * 22050),)
        assert np.all(np.isfinite(stem.samples))


def test_six_source_model_gives_guitar_and_piano(install_tiny: Callable[..., object]) -> None:
    install_tiny("tiny6", kind="six")
    separator = DemucsSeparator(model="tiny6")
    out = separator.separate(Audio(noise(0.6), SR))
    assert list(out) == ["drums", "bass", "other", "vocals", "guitar", "piano"]


@pytest.mark.parametrize("overlap", [0.25, 0.5])
def test_chunking_equals_demucs_apply_model(install_tiny: Callable[..., object], overlap: float) -> None:
    """Streamed segments, cross-faded at their borders, give exactly what Demucs' split=True gives."""
    install_tiny("tiny")
    separator = DemucsSeparator(model="tiny", overlap=overlap)
    mix = noise(3.3, seed=3)  # 3.3 segments: several borders and a short last segment
    got = separator.separate(Audio(mix, SR))
    expected = reference(separator.model, mix, overlap=overlap)
    for i, name in enumerate(separator.stem_names()):
        np.testing.assert_allclose(got[name].samples, expected[i], atol=2e-5, rtol=0)


def test_bag_of_models_follows_the_bag_weights(install_tiny: Callable[..., object]) -> None:
    install_tiny("bag", kind="four+four_b", weights=((1, 1, 0, 1), (0, 1, 1, 1)))
    separator = DemucsSeparator(model="bag")
    mix = noise(1.5, seed=5)
    got = separator.separate(Audio(mix, SR))
    expected = reference(separator.model, mix, overlap=0.25)
    for i, name in enumerate(separator.stem_names()):
        np.testing.assert_allclose(got[name].samples, expected[i], atol=2e-5, rtol=0)


def test_stems_sum_to_the_mix_across_chunk_borders(install_tiny: Callable[..., object]) -> None:
    """For a model with that property the sum survives chunking, normalisation and cross-fades."""
    install_tiny("tiny")
    separator = DemucsSeparator(model="tiny", overlap=0.3)
    separator.model = Proportional([0.1, 0.2, 0.3, 0.4])
    mix = noise(4.45, seed=7) + 0.05  # with a DC offset
    out = separator.separate(Audio(mix, SR))
    total = sum(stem.samples for stem in out.values())
    np.testing.assert_allclose(total, mix, atol=1e-5, rtol=0)
    mean = float(mix.mean(axis=0).mean())
    np.testing.assert_allclose(out["s3"].samples, 0.4 * (mix - mean) + mean / 4, atol=1e-5, rtol=0)
    assert max(separator.model.lengths) <= separator.segment_length


def test_resampling_keeps_stems_aligned_with_the_mix(install_tiny: Callable[..., object]) -> None:
    """22.05 kHz mono in, the model's 8 kHz stereo inside, 22.05 kHz mono out: no delay, no drift."""
    install_tiny("tiny")
    separator = DemucsSeparator(model="tiny")
    separator.model = Proportional([0.5, 0.25, 0.125, 0.125])
    t = np.arange(int(3.2 * 22050)) / 22050
    mix = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # well below the model's Nyquist
    out = separator.separate(Audio(mix, 22050))
    total = sum(stem.samples for stem in out.values())
    assert total.shape == mix.shape
    np.testing.assert_allclose(total[200:-200], mix[200:-200], atol=2e-3)
    np.testing.assert_allclose(out["s0"].samples[200:-200], 0.5 * mix[200:-200], atol=2e-3)


def test_vocals_and_instrumental_sum_to_the_mix(install_tiny: Callable[..., object]) -> None:
    """`stems` holds for any model: instrumental is the mix less the vocals."""
    install_tiny("tiny")
    separator = DemucsSeparator(model="tiny")
    mix = Audio(noise(1.2, seed=2), SR)
    all_stems = separator.separate(mix)
    pair = select_stems(all_stems, mix, "stems")
    assert list(pair) == ["vocals", "instrumental"]
    np.testing.assert_allclose(pair["vocals"].samples + pair["instrumental"].samples, mix.samples, atol=1e-6)
    assert select_stems(all_stems, mix, "all_stems").keys() == all_stems.keys()


def test_memory_stays_bounded_for_long_audio(install_tiny: Callable[..., object]) -> None:
    """The network only ever sees one segment, and blocks are handed on as soon as they are final."""
    install_tiny("tiny")
    separator = DemucsSeparator(model="tiny")
    probe = Proportional([0.25, 0.25, 0.25, 0.25])
    separator.model = probe
    seconds = 240.0
    audio = Audio(noise(seconds, seed=1), SR)
    full_output = 4 * audio.samples.nbytes
    tracemalloc.start()
    try:
        blocks = separator.iter_separate(audio)
        first_start, first = next(blocks)
        assert first_start == 0 and len(probe.lengths) == 1, "the first block comes after one segment"
        covered = first["s0"].shape[-1]
        for start, block in blocks:
            assert start == covered
            covered += block["s0"].shape[-1]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert covered == audio.samples.shape[-1]
    assert max(probe.lengths) <= separator.segment_length
    assert len(probe.lengths) == int(np.ceil(audio.samples.shape[-1] / int(0.75 * separator.segment_length)))
    assert peak < 0.35 * full_output, f"peak {peak / 1e6:.1f} MB against {full_output / 1e6:.1f} MB of stems"


def test_the_real_network_sees_one_segment_at_a_time(install_tiny: Callable[..., object]) -> None:
    install_tiny("tiny")
    separator = DemucsSeparator(model="tiny")
    seen: list[int] = []
    net = separator.model.models[0]
    handle = net.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[-1]))
    try:
        separator.separate(Audio(noise(2.5), SR))
    finally:
        handle.remove()
    assert seen and all(n == separator.segment_length for n in seen)


def test_progress_is_reported(install_tiny: Callable[..., object]) -> None:
    install_tiny("tiny")
    separator = DemucsSeparator(model="tiny")
    calls: list[tuple[str, float]] = []
    separator.separate(
        Audio(noise(2.2), SR), progress=lambda stage, fraction: calls.append((stage, fraction))
    )
    assert {stage for stage, _ in calls} == {"separating"}
    fractions = [f for _, f in calls]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert len(fractions) >= 4


def test_reuse_from_threads_gives_the_same_result(install_tiny: Callable[..., object]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    install_tiny("tiny")
    separator = DemucsSeparator(model="tiny")
    audio = Audio(noise(1.1, seed=4), SR)
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda _: separator.separate(audio)["vocals"].samples, range(2))
    np.testing.assert_array_equal(a, b)


def test_missing_weights_name_the_fetch_command(data_root: Path) -> None:
    assert not demucs_available("htdemucs")
    with pytest.raises(SeparationUnavailableError, match=r"run `stemscribe models fetch demucs`"):
        get_separator("demucs")
    with pytest.raises(
        SeparationUnavailableError, match=r"stemscribe models fetch demucs --model htdemucs_6s"
    ):
        get_separator("htdemucs_6s")


def test_damaged_weights_are_a_model_error(install_tiny: Callable[..., object]) -> None:
    spec = install_tiny("tiny")
    path = models_dir() / spec.files[0].filename
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ModelError, match="tiny.*--force"):
        DemucsSeparator(model="tiny")


def test_bad_options_are_rejected(install_tiny: Callable[..., object]) -> None:
    install_tiny("tiny")
    with pytest.raises(InvalidOptionError, match="overlap"):
        DemucsSeparator(model="tiny", overlap=0.95)
    with pytest.raises(InvalidOptionError, match="segment"):
        DemucsSeparator(model="tiny", segment=5.0)
    with pytest.raises(InvalidOptionError, match="unknown torch device"):
        DemucsSeparator(model="tiny", device="warp-drive")


def test_random_shifts_fit_the_network(install_tiny: Callable[..., object]) -> None:
    """Demucs' shift trick pads each chunk by up to 0.5 s; chunks shrink so the network still fits."""
    install_tiny("tiny")
    separator = DemucsSeparator(model="tiny", shifts=2)
    assert separator.segment_length == SR // 2
    out = separator.separate(Audio(noise(1.6), SR))
    assert all(s.samples.shape == (2, int(1.6 * SR)) and np.all(np.isfinite(s.samples)) for s in out.values())
    with pytest.raises(InvalidOptionError, match="shifts"):
        DemucsSeparator(model="tiny", shifts=1, segment=0.5)


def test_very_short_input(install_tiny: Callable[..., object]) -> None:
    install_tiny("tiny")
    out = DemucsSeparator(model="tiny").separate(Audio(noise(0.004, sr=22050, channels=1), 22050))
    assert all(s.samples.shape == (88,) and np.all(np.isfinite(s.samples)) for s in out.values())


def test_a_shorter_segment_still_covers_the_mix(install_tiny: Callable[..., object]) -> None:
    install_tiny("tiny")
    separator = DemucsSeparator(model="tiny", segment=0.5)
    out = separator.separate(Audio(noise(1.4), SR))
    assert all(s.samples.shape == (2, int(1.4 * SR)) for s in out.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_gpu_matches_cpu(install_tiny: Callable[..., object]) -> None:
    install_tiny("tiny")
    audio = Audio(noise(2.0), SR)
    cpu = DemucsSeparator(model="tiny", device="cpu").separate(audio)
    gpu_separator = DemucsSeparator(model="tiny")
    assert gpu_separator.device == "cuda"
    gpu = gpu_separator.separate(audio)
    for name in cpu:
        np.testing.assert_allclose(gpu[name].samples, cpu[name].samples, atol=1e-3)


def test_transcriber_uses_the_demucs_separator_on_mixes(install_tiny: Callable[..., object]) -> None:
    """The pipeline finds "demucs" through `get_separator`, transcribes each stem, and records it."""
    from stemscribe.separation import weights
    from stemscribe.stems import Family
    from stemscribe.transcription.pipeline import Transcriber

    install_tiny("htdemucs")  # the default model's name, tiny weights
    assert weights.model_status("htdemucs").ready
    t = np.arange(int(2.5 * 22050)) / 22050
    mix = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 110 * t)
    stages: list[str] = []
    result = Transcriber(separator="demucs").transcribe(
        (np.stack([mix, mix]).astype(np.float32), 22050), stem="mix", progress=lambda s, f: stages.append(s)
    )
    assert result.separator == "demucs"
    assert "separating" in stages
    # htdemucs gives four stems: at most one instrument each; "other" is named by the timbre classifier.
    assert len(result.instruments) <= 4
    named = [
        inst.family
        for inst in result.instruments
        if inst.family not in (Family.DRUMS, Family.BASS, Family.VOCALS)
    ]
    assert len(named) <= 1
