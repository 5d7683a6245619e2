"""Loss reconfiguration finds the published case33bw optimum."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.control.flisr import Limits
from gridpilot.control.reconfig import reconfigure
from gridpilot.control.sections import Sections
from gridpilot.model import load_grid


def test_case33bw_published_optimum():
    g = load_grid("case33bw")
    res = reconfigure(g, Limits(v_min_pu=0.90))
    assert sorted(res.open) == [7, 9, 14, 32, 37]
    assert res.losses_kw_after == pytest.approx(139.55, rel=0.01)
    assert res.losses_kw_before == pytest.approx(202.68, rel=0.01)
    st = Sections(g).state(res.switch_closed)
    assert st.energised.all() and not st.looped
    assert np.sum(~res.switch_closed) == 5
