"""Transcription: audio to notes. `pipeline` wires the stages; each other module is one stage.

pitch_model (basic-pitch's network) -> notes (posteriors to notes) with decoding (each stem's
table) -> roles (bass, lead, accompaniment in mixes) -> timbre (who plays a note) -> verify (keep or
drop candidates); drums and drum_model (drum notes), tempo (beats); weights (our ONNX files).
"""
