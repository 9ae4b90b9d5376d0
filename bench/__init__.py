"""stemscribe's development benchmark: rendered songs and stems with exact ground truth, scored with mir_eval.

`python -m bench.build` renders the set into `bench/data/`; `python -m bench.run` transcribes it with
stemscribe and with basic-pitch and prints their scores side by side.
"""
