"""A custom contract check, referenced by import path from a test contract."""

import pandas as pd


def amount_below_income(frame: pd.DataFrame) -> pd.Series:
    """A loan larger than ten years of income is a data error, not a risky customer."""
    return frame["amount"] <= 10 * frame["annual_income"]


def broken(frame: pd.DataFrame) -> pd.Series:
    """A custom check with a bug: the gate must report it, not crash."""
    return frame["no_such_column"] > 0


def positive(value: float) -> bool:
    """Element-wise on one column's values."""
    return value > 0


def has_purpose(row: pd.Series) -> bool:
    """Element-wise on whole rows."""
    return isinstance(row["purpose"], str)
