import stemscribe


def test_public_api_is_pinned() -> None:
    assert sorted(stemscribe.__all__) == sorted(
        [
            "Audio", "AudioError", "AudioTooLongError", "CorruptAudioError", "EmptyAudioError",
            "EngravingError", "Family", "Instrument", "InvalidOptionError", "ModelError", "NotAudioError",
            "NoteEvent", "Result", "ScoreAnalysis", "ScoreUnavailableError", "SeparationUnavailableError",
            "StemType", "StemscribeError", "Transcriber", "load_audio", "transcribe", "__version__",
        ]
    )  # fmt: skip
    for name in stemscribe.__all__:
        assert hasattr(stemscribe, name), name


def test_import_loads_no_model() -> None:
    import sys

    assert "onnxruntime" not in sys.modules or "stemscribe.transcription.pitch_model" in sys.modules
    assert "basic_pitch" not in sys.modules


def test_import_loads_no_score_library() -> None:
    """The score extra (music21, Verovio, CairoSVG) loads when a score is made, not on import."""
    import subprocess
    import sys

    code = (
        "import sys, stemscribe; print([m for m in ('music21', 'verovio', 'cairosvg') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
