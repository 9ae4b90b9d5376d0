import stemscribe


def test_public_api_is_pinned() -> None:
    assert sorted(stemscribe.__all__) == sorted(
        [
            "Audio", "AudioError", "AudioTooLongError", "CorruptAudioError", "EmptyAudioError", "Family",
            "Instrument", "InvalidOptionError", "ModelError", "NotAudioError", "NoteEvent", "Result",
            "SeparationUnavailableError", "StemType", "StemscribeError", "Transcriber", "load_audio",
            "transcribe", "__version__",
        ]
    )  # fmt: skip
    for name in stemscribe.__all__:
        assert hasattr(stemscribe, name), name


def test_import_loads_no_model() -> None:
    import sys

    assert "onnxruntime" not in sys.modules or "stemscribe.transcription.pitch_model" in sys.modules
    assert "basic_pitch" not in sys.modules
