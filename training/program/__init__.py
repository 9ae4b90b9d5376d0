"""The GM program classifier (`stemscribe.transcription.programs`): training, export, evaluation."""
