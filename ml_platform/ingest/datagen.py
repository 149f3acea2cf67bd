"""A seeded generator of loan applications that lands daily files like an upstream system would.

Customers apply for loans over time; whether a loan defaulted is the label. Each day's file is a
pure function of (seed, day), so generating more days later reproduces the earlier ones exactly.
``drift`` shifts incomes, credit scores and the purpose mix to simulate a changing population.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from ml_platform.ingest.io import write_parquet

START_DAY = date(2026, 1, 1)
PURPOSES = np.array(
    [
        "debt_consolidation",
        "home_improvement",
        "car",
        "business",
        "medical",
        "education",
        "vacation",
    ]
)
PURPOSE_RISK = np.array([0.1, -0.3, -0.2, 0.5, 0.4, 0.2, 0.3])
REGIONS = np.array(["north", "south", "east", "west", "central"])
CHANNELS = np.array(["web", "branch", "partner", "mobile"])
CUSTOMERS_PER_EVENT = 0.2


@dataclass(frozen=True)
class GeneratorConfig:
    events: int = 300_000
    days: int = 120
    seed: int = 7
    drift: float = 0.0

    @property
    def events_per_day(self) -> int:
        return max(1, self.events // self.days)

    @property
    def customers(self) -> int:
        return max(10, int(self.events * CUSTOMERS_PER_EVENT))


def _customers(cfg: GeneratorConfig) -> pd.DataFrame:
    rng = np.random.default_rng(cfg.seed)
    n = cfg.customers
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 1, dtype=np.int64),
            "region": rng.choice(REGIONS, n, p=[0.25, 0.2, 0.2, 0.2, 0.15]),
            "income": np.round(rng.lognormal(10.9, 0.45, n), 2),
            "score": np.clip(rng.normal(680, 60, n), 300, 850),
            "activity": rng.pareto(2.5, n) + 0.2,
            "employment_years": np.round(np.clip(rng.gamma(2.0, 3.0, n), 0, 45), 1),
        }
    )


def generate_day(cfg: GeneratorConfig, day: date, customers: pd.DataFrame) -> pd.DataFrame:
    """All applications made on ``day``."""
    rng = np.random.default_rng([cfg.seed, (day - START_DAY).days])
    n = int(rng.poisson(cfg.events_per_day))
    weights = customers["activity"].to_numpy()
    idx = rng.choice(len(customers), n, p=weights / weights.sum())
    c = customers.iloc[idx].reset_index(drop=True)
    income = c["income"].to_numpy() * (1 - 0.25 * cfg.drift) * rng.lognormal(0, 0.05, n)
    score = np.clip(c["score"].to_numpy() - 40 * cfg.drift + rng.normal(0, 15, n), 300, 850)
    purpose_p = np.array([0.35, 0.15, 0.15, 0.1, 0.08, 0.1, 0.07])
    purpose_p = (1 - cfg.drift) * purpose_p + cfg.drift * np.roll(purpose_p, 3)
    purpose_idx = rng.choice(len(PURPOSES), n, p=purpose_p / purpose_p.sum())
    amount = np.round(np.clip(rng.lognormal(9.2, 0.7, n), 500, 100_000), 2)
    term = rng.choice([12, 24, 36, 48, 60], n, p=[0.15, 0.25, 0.3, 0.15, 0.15])
    dti = amount / income
    logit = (
        -2.4
        - 0.012 * (score - 680)
        + 2.2 * dti
        + PURPOSE_RISK[purpose_idx]
        + 0.35 * np.log(c["activity"].to_numpy())
        + 0.006 * (term - 36)
        - 0.03 * c["employment_years"].to_numpy()
    )
    defaulted = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    seconds = np.sort(rng.integers(0, 86_400, n))
    day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    employment = c["employment_years"].to_numpy().copy()
    employment[rng.random(n) < 0.02] = np.nan  # upstream sometimes omits it
    frame = pd.DataFrame(
        {
            "application_id": [f"{day:%Y%m%d}-{i:07d}" for i in range(n)],
            "customer_id": c["customer_id"].to_numpy(),
            "applied_at": pd.to_datetime(day_start) + pd.to_timedelta(seconds, unit="s"),
            "amount": amount,
            "term_months": term.astype(np.int64),
            "annual_income": np.round(income, 2),
            "credit_score": np.round(score).astype(np.int64),
            "employment_years": employment,
            "purpose": PURPOSES[purpose_idx],
            "region": c["region"].to_numpy(),
            "channel": rng.choice(CHANNELS, n, p=[0.45, 0.2, 0.15, 0.2]),
            "defaulted": defaulted,
        }
    )
    # One application per customer per second: (entity, timestamp) is the natural key.
    return frame.drop_duplicates(["customer_id", "applied_at"]).reset_index(drop=True)


def landed_days(landing_dir: Path) -> list[date]:
    return sorted(
        date.fromisoformat(p.stem.split("_")[-1])
        for p in landing_dir.glob("applications_*.parquet")
    )


def land(cfg: GeneratorConfig, landing_dir: Path, new_days: int | None = None) -> list[Path]:
    """Land daily files. With ``new_days``, append that many days after the last landed one;
    otherwise (re)write days 0..cfg.days-1. Returns the files written."""
    landing_dir.mkdir(parents=True, exist_ok=True)
    customers = _customers(cfg)
    if new_days is None:
        days = [START_DAY + timedelta(d) for d in range(cfg.days)]
    else:
        existing = landed_days(landing_dir)
        first = (existing[-1] + timedelta(1)) if existing else START_DAY
        days = [first + timedelta(d) for d in range(new_days)]
    written = []
    for day in days:
        target = landing_dir / f"applications_{day.isoformat()}.parquet"
        written.append(write_parquet(generate_day(cfg, day, customers), target))
    return written
