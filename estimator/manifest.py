"""Every report's ``manifest.json``, as typed models: what was run, on what, and what came out.

One base (:class:`Manifest`: the tool that wrote the report) and a model per report — a run
(:class:`RunManifest`), a survival search, a census, a backtest. The models are built where the
reports are assembled and read by the terminal views and the HTML page by attribute; they are
written by :func:`estimator.report.write_reports` (:meth:`Manifest.dump`, then checked for
non-finite numbers by :func:`estimator.finite.check_manifest`).
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from estimator.path import Schedule


def package_version(package: str = "forced-flow") -> str | None:
    """The installed version of ``package``, or None."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Manifest(_Model):
    """What every manifest says: the tool that wrote the report."""

    tool: str = "forced-flow"
    #: Fields left out of the file when they are None (the others are written as null).
    omitted_if_none: ClassVar[tuple[str, ...]] = ()

    def dump(self) -> dict[str, Any]:
        """The manifest as plain Python values (numbers as they are: a non-finite one is
        caught before anything is written)."""
        data = self.model_dump()
        return {k: v for k, v in data.items() if not (k in self.omitted_if_none and v is None)}


# --- a run -------------------------------------------------------------------------------------
class ScenarioRef(_Model):
    name: str
    path: str | None  # as given: a shipped name's file, or the user's path
    sha256: str | None


class MarketRef(_Model):
    name: str
    as_of: str | None  # the census vintage's date, if the market has one
    base_currency: str
    inputs: dict[str, str]  # input file label → sha256


class Parameters(_Model):
    participation: float
    solver: str
    execution_override: str | None
    workers: int
    workers_used: int


class Counts(_Model):
    holders: int
    accounts: float  # a holder row may stand for many accounts
    positions: int
    assets: int
    trades: int
    compiled_problems: int


class Cures(_Model):
    drawn: float  # cash drawn to cure, over the run
    short: float  # the largest remaining deficiencies, summed


class Totals(_Model):
    sell_value: float
    buy_value: float


class Flows(_Model):
    headline: dict[str, float]  # net forced + systematic flow per asset class
    by_kind: dict[str, dict[str, float]]  # per flow kind: sold, bought, net


class CascadeSummary(_Model):
    mode: str
    execution_point: float
    rounds_traded: int
    converged: bool
    amplification: float
    loss_amplification: float
    aggregate_vulnerability: float
    lender_losses: bool
    rounds: list[dict[str, Any]]  # estimator.cascade.CascadeResult.round_summary's rows


class DaySummary(_Model):
    days_traded: int
    peak_day: int | None  # the day most value was sold
    peak_sell_value: float
    capitulation_day: int | None  # the last day with forced selling
    per_day: list[dict[str, Any]]  # estimator.cascade.CascadeResult.day_summary's rows


class PathSummary(_Model):
    """A dated path: its calendar, first and last dates, the days its moves fall on, the first
    and last dates of its history (the days before it that start the estimators) and the
    estimators' starting levels it gives."""

    calendar: str
    start: str
    end: str
    trading_days: int
    moves_on: list[str]
    history: list[str] | None = None  # [first, last] date of the history, if any
    #: The estimators' starting levels given by selector: select, vol, label, source.
    starting_vol: list[dict[str, object]] | None = None

    @classmethod
    def of(cls, schedule: Schedule) -> PathSummary:
        days = schedule.days
        before = sorted({m.date for m in schedule.history})
        return cls(
            calendar=schedule.calendar,
            start=days[0].isoformat(),
            end=days[-1].isoformat(),
            trading_days=len(days),
            moves_on=[days[d].isoformat() for d in sorted(schedule.shocks)],
            history=[before[0].isoformat(), before[-1].isoformat()] if before else None,
            starting_vol=[
                v.model_dump(mode="json", exclude_defaults=True) | {"vol": v.vol}
                for v in schedule.starting_vol
            ]
            or None,
        )


class GltSummary(_Model):
    aggregate_vulnerability: float


class EquilibriumSummary(_Model):
    least_iterations: int
    greatest_iterations: int
    multiple_equilibria: bool
    tolerance: float


class RunManifest(Manifest):
    """A run: its inputs by hash, its options and versions, and its headline results."""

    omitted_if_none: ClassVar[tuple[str, ...]] = ("published", "path")

    version: str | None = Field(default_factory=package_version)
    scenario: ScenarioRef
    market: MarketRef
    parameters: Parameters
    versions: dict[str, str | None]
    lock: str
    counts: Counts
    index_changes: list[dict[str, Any]]
    statuses: dict[str, int]
    cures: Cures
    totals: Totals
    flows: Flows
    lender_losses: float
    cascade: CascadeSummary | None
    days: DaySummary | None
    glt: GltSummary | None
    equilibrium: EquilibriumSummary | None
    warnings: list[str]
    timings_seconds: dict[str, float]
    published: dict[str, int] | None = None  # verdict → figures, for an episode
    path: PathSummary | None = None  # a dated path's dates


# --- the other reports -------------------------------------------------------------------------
class SurvivalManifest(Manifest):
    """A survival search: its settings and how far it went."""

    version: str | None = Field(default_factory=package_version)
    report: str = "survival"
    scenario: str
    market: str
    search: dict[str, Any]  # estimator.survival.Search's settings
    evaluations: int  # rounds
    points: int  # (holder, multiple, cash) points evaluated in them
    searched_to: float
    holders: int
    forced_at_scenario: int


class CensusManifest(Manifest):
    """A census of a market, and the kinds of the aggregates its vintage was sized to."""

    omitted_if_none: ClassVar[tuple[str, ...]] = ("aggregates",)

    tool: str = "forced-flow census"
    market: str
    as_of: str | None
    aggregates: dict[str, int] | None = None  # kind (estimate, assumption, …) → count


class BacktestManifest(Manifest):
    """Every episode's published figures: verdicts, and the channels behind the misses."""

    tool: str = "forced-flow backtest"
    episodes: list[str]
    figures: int
    verdicts: dict[str, int]
    missing_channels: dict[str, list[str]]
    unexplained: list[str]
