"""The drum transcription model: data generator (`data`), `train`, `evaluate`, `export`."""
