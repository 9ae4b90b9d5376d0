"""Sheet music from a Result: metre, bars, key and chords (analysis), MusicXML, engraved pages, MIDI meta."""
