"""stemscribe's benchmark: rendered songs and stems with exact ground truth, scored with mir_eval.

`python -m bench.build` renders the dev split into `bench/data/` and the held-out split (other songs,
two SoundFonts) into `bench/data-heldout/`; `python -m bench.run` transcribes both with stemscribe and
with basic-pitch and prints their scores side by side.
"""
