"""Branch conductor currents of the compiled QSTS statistics, four rows at a time in vector
registers.

A branch's conductor rows (``I = Y_row·V``, :attr:`.network.Network.branch_rows`) read the
same nodes: a three-phase line's three rows its six terminal nodes, a single-phase one's
row its two. Consecutive rows with one column set form a *group* of up to four rows;
each column of a group is one node voltage times a column of up to four admittances: one
multiply-add on ``<4 x double>`` registers (:mod:`.lanes`), where numba's scalar loop spends
~4 cycles on each complex multiply-add (ieee123: 1,342 entries a step). Lanes past a
group's rows hold zeros. Every lane adds its row's terms in the CSR order and rounds them as
complex arithmetic does, so each ``|I|²`` is bit for bit that of the row-by-row sum.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gridpilot.twin.unbalanced.lanes import LANES, equal_groups, grouped


class BranchGroups(NamedTuple):
    """Conductor rows in groups of up to four sharing their columns (:func:`branch_groups`)."""

    start: np.ndarray  # int64 (groups + 1,): first column slot of each group
    col: np.ndarray  # int64 (slots,): 2 × the node read (an index into V as float64 pairs)
    yr: np.ndarray  # float64 (slots × 4,): the group's admittances in that column, real
    yi: np.ndarray  # imaginary part
    row0: np.ndarray  # int64 (groups,): the group's first row
    i2: np.ndarray  # float64 (rows + 4,) scratch: |I|² of each row (4 lanes written a group)


def branch_groups(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> BranchGroups:
    """:class:`BranchGroups` of the CSR rows ``(indptr, indices, data)``."""
    groups = equal_groups(np.asarray(indptr, np.int64), np.asarray(indices, np.int64))
    return BranchGroups(*grouped(indptr, indices, data, [groups]),
                        np.zeros(len(indptr) - 1 + LANES))  # fmt: skip
