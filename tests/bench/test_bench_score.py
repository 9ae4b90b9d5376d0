"""The benchmark's scoring: every metric on hand-made notes whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mir_eval", reason="mir_eval (the bench/dev extra) is not installed")

import mir_eval.transcription  # noqa: E402
import mir_eval.util  # noqa: E402

import bench.score  # noqa: E402
from bench.score import (  # noqa: E402
    Counts,
    ScoredNote,
    aggregate,
    collapse_unisons,
    drum_class,
    drum_class_name,
    drum_counts_by_class,
    fold_drums,
    is_kit_class,
    kit_and_aux,
    match_notes,
    onset_deviations,
    score_item,
)
from stemscribe.transcription.drums import DRUM_CLASS_NAMES, GM_TO_CLASS, KIT_CLASSES  # noqa: E402


def melody(family: str = "bass", *, shift: float = 0.0, n: int = 8, length: float = 0.4) -> list[ScoredNote]:
    return [ScoredNote(40 + i, 0.5 * i + shift, 0.5 * i + shift + length, family) for i in range(n)]


def drums(hits: list[tuple[int, float]]) -> list[ScoredNote]:
    return [ScoredNote(p, t, t + 0.1, "drums", True) for p, t in hits]


def test_perfect_match_scores_one_on_every_metric() -> None:
    ref = melody() + drums([(36, 0.0), (38, 0.5), (42, 0.25)])
    s = score_item(ref, list(ref))
    assert s.pitched == Counts(8, 0, 0)
    for c in (s.pitched, s.pitched_offset, s.instrument, s.drums):
        assert c is not None and c.f1 == 1.0


def test_onsets_60_ms_late_score_zero_and_40_ms_late_score_one() -> None:
    ref = melody()
    late = score_item(ref, melody(shift=0.06))
    assert late.pitched is not None and late.pitched.f1 == 0.0
    assert late.pitched == Counts(0, 8, 8)
    near = score_item(ref, melody(shift=0.04))
    assert near.pitched is not None and near.pitched.f1 == 1.0


def test_wrong_offsets_keep_onset_f1_and_lose_onset_offset_f1() -> None:
    ref = melody(length=0.4)
    s = score_item(ref, melody(length=0.1))
    assert s.pitched is not None and s.pitched.f1 == 1.0
    assert s.pitched_offset is not None and s.pitched_offset.f1 == 0.0
    # 20 % of 0.4 s is 80 ms: an offset 70 ms off still counts.
    ok = score_item(ref, melody(length=0.47))
    assert ok.pitched_offset is not None and ok.pitched_offset.f1 == 1.0


def test_wrong_pitch_is_a_miss() -> None:
    ref = melody()
    est = [ScoredNote(n.pitch + 1, n.start, n.end, n.family) for n in ref]
    s = score_item(ref, est)
    assert s.pitched == Counts(0, 8, 8)


def test_wrong_family_scores_zero_instrument_aware_but_full_pitched() -> None:
    ref = melody("bass")
    s = score_item(ref, melody("piano"))
    assert s.pitched is not None and s.pitched.f1 == 1.0
    assert s.instrument == Counts(0, 8, 8)
    assert s.families["bass"] == Counts(0, 0, 8)
    assert s.families["piano"] == Counts(0, 8, 0)


def test_instrument_aware_counts_sum_over_families() -> None:
    ref = melody("bass", n=4) + [ScoredNote(70, 0.1, 0.3, "vocals"), ScoredNote(72, 0.6, 0.9, "vocals")]
    est = melody("bass", n=4) + [ScoredNote(70, 0.1, 0.3, "piano"), ScoredNote(72, 0.6, 0.9, "vocals")]
    s = score_item(ref, est)
    assert s.instrument == Counts(5, 1, 1)
    assert s.pitched == Counts(6, 0, 0)


def test_f1_equals_mir_evals_own_on_random_notes() -> None:
    rng = np.random.default_rng(7)
    for _ in range(5):
        starts = np.sort(rng.uniform(0, 10, 40))
        ref = [
            ScoredNote(int(p), float(t), float(t + d), "piano")
            for p, t, d in zip(rng.integers(40, 80, 40), starts, rng.uniform(0.05, 1.0, 40), strict=True)
        ]
        est = [
            ScoredNote(
                n.pitch + int(rng.random() < 0.2),
                n.start + float(rng.normal(0, 0.04)),
                n.end + float(rng.normal(0, 0.1)),
                "piano",
            )
            for n in ref
            if rng.random() < 0.85
        ]
        est = [n for n in est if n.end > n.start]
        ri = np.array([[n.start, n.end] for n in ref])
        rp = mir_eval.util.midi_to_hz(np.array([n.pitch for n in ref], float))
        ei = np.array([[n.start, n.end] for n in est])
        ep = mir_eval.util.midi_to_hz(np.array([n.pitch for n in est], float))
        _, _, f_on, _ = mir_eval.transcription.precision_recall_f1_overlap(ri, rp, ei, ep, offset_ratio=None)
        _, _, f_off, _ = mir_eval.transcription.precision_recall_f1_overlap(ri, rp, ei, ep)
        s = score_item(ref, est)
        assert s.pitched is not None and s.pitched_offset is not None
        assert s.pitched.f1 == pytest.approx(f_on)
        assert s.pitched_offset.f1 == pytest.approx(f_off)
        assert 0 < s.pitched.f1 < 1


def test_drums_fold_onto_classes_and_match_per_class() -> None:
    ref = drums([(36, 0.0), (38, 0.5), (42, 0.25), (46, 0.75)])
    # 35 is a kick too, 40 a snare; 42 and 46 stay different classes.
    est = drums([(35, 0.01), (40, 0.5), (46, 0.25), (42, 0.75)])
    by_class = drum_counts_by_class(ref, est)
    assert by_class[36] == Counts(1, 0, 0)
    assert by_class[38] == Counts(1, 0, 0)
    assert by_class[42] == Counts(0, 1, 1)
    assert by_class[46] == Counts(0, 1, 1)
    s = score_item(ref, est)
    assert s.drums == Counts(2, 2, 2)
    assert s.drums is not None and s.drums.f1 == pytest.approx(0.5)


def test_drum_class_rule_is_the_library_table() -> None:
    assert drum_class(35) == drum_class(36) == 36  # both kicks
    assert drum_class(40) == 38 and drum_class(44) == 42
    for cls in DRUM_CLASS_NAMES:
        assert drum_class(cls) == cls and is_kit_class(cls) == (cls in KIT_CLASSES)
    for key in range(35, 82):
        assert drum_class(key) == GM_TO_CLASS[key]  # every GM key has a class
    # auxiliary percussion folds within its family; GS keys that sound like a class join it
    assert drum_class(69) == drum_class(70) == drum_class(82) == 70  # cabasa, maracas, shaker
    assert drum_class(62) == drum_class(60) == 63 and drum_class(61) == 64
    for key in (54, 56, 63, 70, 75, 81):
        assert not is_kit_class(drum_class(key))
    for key in (27, 28, 87):  # keys of no class stay themselves
        assert drum_class(key) == key and not is_kit_class(key)
    assert drum_class_name(36) == "kick"
    assert drum_class_name(54) == "tambourine"
    assert drum_class_name(28) == "key 28"


def test_auxiliary_percussion_is_scored_not_dropped() -> None:
    ref = drums([(36, 0.0), (54, 0.5), (69, 1.0)])  # kick, tambourine, cabasa
    # a kick (other key, same class), a GS shaker on the cabasa (same class), a slap nobody played
    est = drums([(35, 0.0), (82, 1.0), (28, 1.5)])
    assert [n.pitch for n in fold_drums(ref)] == [36, 54, 70]
    by_class = drum_counts_by_class(ref, est)
    assert by_class == {36: Counts(1, 0, 0), 54: Counts(0, 0, 1), 70: Counts(1, 0, 0), 28: Counts(0, 1, 0)}
    s = score_item(ref, est)
    assert s.drums == Counts(2, 1, 1)
    kit, aux = kit_and_aux(s.drum_classes)
    assert kit == Counts(1, 0, 0) and aux == Counts(1, 1, 1)
    assert set(s.to_dict()["drum_classes"]) == {"kick (36)", "tambourine (54)", "shaker (70)", "key 28 (28)"}


def test_an_auxiliary_key_matches_only_its_class() -> None:
    ref = drums([(54, 0.5)])
    assert score_item(ref, drums([(54, 0.51)])).drums == Counts(1, 0, 0)
    assert score_item(ref, drums([(69, 0.5)])).drums == Counts(0, 1, 1)  # cabasa for a tambourine
    assert score_item(drums([(60, 0.5)]), drums([(63, 0.5)])).drums == Counts(1, 0, 0)  # high bongo, conga
    assert score_item(ref, drums([(38, 0.5)])).drums == Counts(0, 1, 1)  # a snare for a tambourine


def test_a_system_without_auxiliary_percussion_loses_recall() -> None:
    kit = [(36, 0.5 * i) for i in range(6)]
    aux = [(54, 0.5 * i + 0.25) for i in range(6)]
    s = score_item(drums(kit + aux), drums(kit))
    assert s.drums == Counts(6, 0, 6)
    assert s.drums is not None and s.drums.recall == 0.5 and s.drums.precision == 1.0
    # a reference with only auxiliary percussion is still a drum item
    only_aux = score_item(drums(aux), [])
    assert only_aux.drums == Counts(0, 0, 6) and only_aux.pitched is None


def test_the_class_rule_is_one_table_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    # swapping the table changes the scoring and nothing else has to move
    monkeypatch.setattr(bench.score, "DRUM_CLASS_TABLE", {**GM_TO_CLASS, 69: 69})
    assert drum_class(69) == 69
    assert score_item(drums([(69, 0.5)]), drums([(70, 0.5)])).drums == Counts(0, 1, 1)


def test_aggregate_sums_every_drum_class_present() -> None:
    a = score_item(drums([(36, 0.0), (54, 0.5)]), drums([(36, 0.0)]))
    b = score_item(drums([(54, 0.5), (75, 1.0)]), drums([(54, 0.5)]))
    agg = aggregate([a, b])
    assert agg.drum_classes == {36: Counts(1, 0, 0), 54: Counts(1, 0, 1), 75: Counts(0, 0, 1)}
    assert agg.micro["drums"] == Counts(2, 0, 2)
    assert "claves/woodblock (75)" in agg.to_dict()["drum_classes"]


def test_drum_onsets_60_ms_off_miss() -> None:
    s = score_item(drums([(36, 1.0)]), drums([(36, 1.06)]))
    assert s.drums == Counts(0, 1, 1)


def test_pitched_notes_never_count_as_drums_and_drums_never_as_pitched() -> None:
    ref = melody() + drums([(36, 0.0)])
    est = [ScoredNote(36, 0.0, 0.1, "piano")] + melody()  # a "kick" guessed as a pitched note
    s = score_item(ref, est)
    assert s.drums == Counts(0, 0, 1)
    assert s.pitched == Counts(8, 1, 0)


def test_items_without_a_kind_of_note_leave_that_metric_out() -> None:
    drum_stem = score_item(drums([(36, 0.0)]), melody())
    assert drum_stem.pitched is None and drum_stem.instrument is None
    pitched_stem = score_item(melody(), drums([(36, 0.0)]))
    assert pitched_stem.drums is None
    agg = aggregate([drum_stem, pitched_stem])
    assert agg.n_items["pitched"] == 1 and agg.n_items["drums"] == 1


def test_no_estimate_scores_zero_not_an_error() -> None:
    s = score_item(melody(), [])
    assert s.pitched == Counts(0, 0, 8)
    assert s.pitched.f1 == 0.0
    assert s.deviations == []


def test_exact_unisons_collapse_to_one_note() -> None:
    a = ScoredNote(60, 1.0, 1.5, "strings")
    b = ScoredNote(60, 1.0, 2.0, "strings")
    c = ScoredNote(60, 1.2, 2.0, "strings")
    kept = collapse_unisons([a, b, c])
    assert kept == [b, c]
    assert match_notes([a, b], [a]) == Counts(1, 0, 0)


def test_aggregate_is_micro_over_counts_and_mean_over_items() -> None:
    perfect = score_item(melody(n=2), melody(n=2))  # 2 TP
    half = score_item(melody(n=8), melody(n=8)[:4])  # 4 TP, 4 FN
    agg = aggregate([perfect, half])
    micro = agg.micro["pitched"]
    assert micro == Counts(6, 0, 4)
    assert micro is not None and micro.f1 == pytest.approx(2 * 1.0 * 0.6 / 1.6)
    assert agg.mean["pitched"] == pytest.approx((1.0 + 2 * 0.5 / 1.5) / 2)
    assert agg.micro["drums"] is None and agg.mean["drums"] is None


def test_onset_deviation_reports_a_constant_lag() -> None:
    dev = onset_deviations(melody(), melody(shift=0.08))
    assert len(dev) == 8
    assert np.allclose(dev, 0.08)
    agg = aggregate([score_item(melody(), melody(shift=0.08))])
    assert agg.onset_deviation_ms is not None and agg.onset_deviation_ms["median"] == pytest.approx(80.0)
