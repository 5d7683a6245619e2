"""The long-horizon literature's ETT split, derived from the time index.

The ETT protocol (Zhou et al., Informer, AAAI 2021; the ``ETTh*``/``ETTm*`` papers since)
splits a series by *time*: 12 months of 30 days for training, the next 4 for validation and
the next 4 for test, data standardised with the training rows. At hourly steps that is
8640/2880/2880 rows, at 15-minute steps 34560/11520/11520. :func:`ett_split` derives the row
counts from the history's step and refuses a step that does not divide 30 days, or a history
shorter than the 20 months the split needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from gridpilot.errors import Issue, ValidationError

MONTH = pd.Timedelta(days=30)
TRAIN_MONTHS, VAL_MONTHS, TEST_MONTHS = 12, 4, 4


@dataclass(frozen=True)
class EttSplit:
    """Row bounds of the ETT split: train [0, val_start), validation [val_start,
    test_start), test [test_start, end); ``month_steps`` rows per 30-day month."""

    month_steps: int
    val_start: int
    test_start: int
    end: int


def ett_split(step: pd.Timedelta, n_rows: int, what: str = "history") -> EttSplit:
    """The 12/4/4-month split (30-day months) in rows of ``step`` for a history of ``n_rows``.

    Raises a ValidationError naming the step when it does not divide 30 days, or the row
    count when the history is shorter than the 20 months the split needs.
    """
    step = pd.Timedelta(step)
    if step <= pd.Timedelta(0) or MONTH.value % step.value != 0:
        raise ValidationError(
            issues=[
                Issue(
                    what,
                    "step",
                    "the ETT protocol splits by 30-day months: the step must divide 30 days",
                    value=str(step),
                )
            ]
        )
    m = MONTH.value // step.value
    end = (TRAIN_MONTHS + VAL_MONTHS + TEST_MONTHS) * m
    if n_rows < end:
        raise ValidationError(
            issues=[
                Issue(
                    what,
                    "rows",
                    f"too short for the ETT protocol: 12/4/4 months of 30 days at {step} steps "
                    f"need {end} rows",
                    value=n_rows,
                )
            ]
        )
    return EttSplit(m, TRAIN_MONTHS * m, (TRAIN_MONTHS + VAL_MONTHS) * m, end)
