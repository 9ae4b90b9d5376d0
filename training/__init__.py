"""Training code for stemscribe's own models (not shipped in the wheel; needs the `train` extra)."""
