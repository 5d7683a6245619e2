"""Fixtures of the forecasting tests."""

from __future__ import annotations

import pandas as pd
import pytest
from fc_synth import make_series


@pytest.fixture
def series() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_series()
