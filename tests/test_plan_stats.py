"""Overlong policies, packing and statistics on literal inputs whose answers can be worked out by hand."""

import numpy as np
import pytest

from analyze.lengths import LengthTable
from analyze.overlong import apply_overlong
from analyze.packing import pack
from analyze.plan import make_plan
from analyze.stats import candidate_lengths, dynamic_padding_waste, length_stats, optimizer_steps, plan_stats
from analyze.suggest import suggest


def table(records: list[tuple[int, list[tuple[int, int]]]]) -> LengthTable:
    """Build a table from (length, [supervised spans]) pairs."""
    spans = [(r, s, e) for r, (_, sp) in enumerate(records) for s, e in sp]
    col = np.array(spans, dtype=np.int64).reshape(-1, 3)
    return LengthTable(
        file_index=np.zeros(len(records), np.int32),
        line=np.arange(1, len(records) + 1),
        tokens=np.array([n for n, _ in records]),
        supervised=np.array([sum(e - s for s, e in sp) for _, sp in records]),
        span_record=col[:, 0],
        span_start=col[:, 1],
        span_end=col[:, 2],
    )


# 0: fits (10 tokens, reply 4..10); 1: 30 tokens, replies [5,10) [15,20) [25,30); 2: 30 tokens, first reply ends at 25
T = table([(10, [(4, 10)]), (30, [(5, 10), (15, 20), (25, 30)]), (30, [(20, 25)])])


def test_pack_matches_trl_example():
    # [[1,2,3],[4,5,6,7],[8]] packed at 4 → [[4,5,6,7],[1,2,3,8]]
    assert pack([3, 4, 1], 4) == [[1], [0, 2]]


def test_pack_longest_first_by_hand():
    # 6 opens a row (4 free), 5 does not fit there and opens another (5 free), 4 goes to the tighter row
    rows = pack([5, 6, 4], 10)
    assert sorted(map(sorted, rows)) == [[0], [1, 2]]


def test_pack_never_overfills_and_loses_nothing():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 129, size=5000)
    rows = pack(lengths, 128)
    flat = sorted(i for row in rows for i in row)
    assert flat == list(range(5000))
    assert max(lengths[row].sum() for row in rows) <= 128
    assert len(rows) <= 1.01 * np.ceil(lengths.sum() / 128)


def test_pack_rejects_overlong():
    with pytest.raises(ValueError, match="overlong"):
        pack([5], 4)


def test_cut_turns_keeps_whole_turns():
    k = apply_overlong(T, 22, "cut_turns")
    assert k.tokens.tolist() == [10, 20, 0]  # record 1 cut after its 2nd reply; record 2 has no reply ending ≤ 22
    assert k.supervised.tolist() == [6, 10, 0]


def test_truncate_keeps_partial_reply():
    k = apply_overlong(T, 22, "truncate")
    assert k.tokens.tolist() == [10, 22, 22]
    assert k.supervised.tolist() == [6, 10, 2]


def test_drop():
    k = apply_overlong(T, 22, "drop")
    assert k.tokens.tolist() == [10, 0, 0]
    assert k.supervised.tolist() == [6, 0, 0]


def test_plan_stats_by_hand():
    plan = make_plan(T, 22, "cut_turns")
    s = plan_stats(T, plan, micro_batch=2, grad_accum=1, seed=0)
    assert (s.records_truncated, s.records_dropped, s.records_without_supervised) == (2, 1, 1)
    assert s.truncation_rate == pytest.approx(2 / 3)
    assert s.tokens_lost == 70 - 30 and s.tokens_lost_rate == pytest.approx(40 / 70)
    assert s.supervised_tokens_lost == 26 - 16
    # trained: lengths 10 and 20 → pad-to-max uses 2 × 22 slots; packing: 10 + 20 > 22 → two rows
    assert s.padding_waste_pad_to_max == pytest.approx(1 - 30 / 44)
    assert s.packed_rows == 2 and s.padding_waste_packed == pytest.approx(1 - 30 / 44)
    assert s.padding_waste_dynamic == pytest.approx(1 - 30 / 40)  # one batch of 2 padded to 20
    assert (s.steps_per_epoch_unpacked, s.steps_per_epoch_packed) == (1, 1)


def test_dynamic_waste_counts_a_short_last_batch_only_for_its_records():
    # 3 records, batch 2: one batch pads to its longest, the last holds one record with no padding
    waste = dynamic_padding_waste(np.array([5, 5, 5]), 2, seed=0)
    assert waste == 0.0


def test_length_stats_nearest_rank():
    s = length_stats(np.arange(1, 101))
    assert (s.min, s.p50, s.p90, s.p95, s.p99, s.max, s.mean) == (1, 50, 90, 95, 99, 100, 50.5)


def test_optimizer_steps_round_up_like_trainer():
    assert optimizer_steps(16, 4, 4) == 1 and optimizer_steps(17, 4, 4) == 2 and optimizer_steps(0, 4, 4) == 0


def test_candidate_ladder_spans_the_data():
    assert candidate_lengths(np.array([100, 300, 900]), [512, 704], limit=768) == [256, 384, 512, 704, 768]


def test_suggest_supervised_policy_and_cap():
    # supervised: 26 tokens; at 32 everything fits; at 25 cut_turns keeps 6 + 10 + 5 = 21 (80.8%) → not 0.9
    s = suggest(T, "supervised", 0.9, 16, None, "cut_turns")
    assert s.max_length == 32 and "supervised" in s.reason
    capped = suggest(T, "coverage", 1.0, 16, 20, "cut_turns")
    assert capped.max_length == 16 and "capped at the model's limit of 20" in capped.reason
