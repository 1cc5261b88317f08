"""Analytic receptive fields agree with gradient-measured ones, and the exact numbers."""

from __future__ import annotations

import pytest

from caalib.models import TOPOLOGIES
from caalib.receptive_field import (
    analytic_receptive_fields,
    measured_receptive_fields,
    paper_receptive_field,
    receptive_field_rows,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_analytic_equals_measured(topology):
    analytic = analytic_receptive_fields(topology)
    measured = measured_receptive_fields(topology)
    assert len(analytic) == len(measured) == 4
    for a, m in zip(analytic, measured, strict=True):
        assert m.filled, f"holes in the measured field of block {m.block}"
        assert a.interval(m.unit) == (m.time, m.freq), f"block {a.block}"
        assert a.size == m.size


def test_exact_sizes():
    sizes = {t: [rf.size[0] for rf in analytic_receptive_fields(t)] for t in TOPOLOGIES}
    assert sizes == {"pool": [6, 16, 36, 76], "nopool": [5, 9, 13, 17], "atrous": [5, 13, 29, 61]}
    pool = analytic_receptive_fields("pool")
    assert [rf.conv_size[0] for rf in pool] == [5, 14, 32, 68]
    assert [rf.jump[0] for rf in pool] == [2, 4, 8, 16]
    assert all(rf.jump == (1, 1) for rf in analytic_receptive_fields("atrous"))


def test_measured_on_a_rectangular_input_off_centre_sizes():
    measured = measured_receptive_fields("atrous", n_frames=160, n_mels=144)
    assert [m.size for m in measured] == [(5, 5), (13, 13), (29, 29), (61, 61)]


def test_paper_formulas_are_loose():
    assert [paper_receptive_field("pool", b) for b in range(1, 5)] == [5, 10, 20, 40]
    assert [paper_receptive_field("atrous", b) for b in range(1, 5)] == [4, 9, 19, 39]
    assert [paper_receptive_field("nopool", b) for b in range(1, 5)] == [5, 5, 5, 5]
    rows = receptive_field_rows()
    assert len(rows) == 12
    last = {r["topology"]: r for r in rows if r["block"] == 4}
    assert last["atrous"]["conv_rf"] > last["atrous"]["paper_rf"]


def test_unknown_topology():
    with pytest.raises(ValueError, match="allowed: pool, nopool, atrous"):
        analytic_receptive_fields("dense")
