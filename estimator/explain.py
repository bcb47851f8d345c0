"""One holder's story in a run: its book, the rules that fired, its trades round by round (and
day by day on a day clock), and who forced it."""

from __future__ import annotations

import polars as pl

from estimator.api import RunResult
from estimator.errors import InputError, Problem


def _money(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def explain(result: RunResult, holder_id: str) -> str:
    """The story of ``holder_id`` as plain text (an unknown holder is an input error)."""
    rows = result.holders.filter(pl.col("holder_id") == holder_id)
    if rows.is_empty():
        known = result.holders["holder_id"].head(5).to_list()
        raise InputError([Problem("holder", f"no holder {holder_id!r} in this run (e.g. {known})")])
    h = rows.row(0, named=True)
    lines = [
        f"{holder_id}: {h['holder_type']}, mandate {h['mandate']} ({h['mandate_execution']})",
        f"status: {h['status']}" + (f", forced by {h['forced_by']}" if h.get("forced_by") else ""),
    ]
    k = h.get("accounts") or 1.0
    if k > 1:
        lines.append(f"{k:,.0f} identical accounts: the figures below are theirs together")
    lines += ["", f"{'':24}{'before':>16}{'after':>16}"]
    for label, col in (
        ("equity", "equity"),
        ("gross assets", "gross_assets"),
        ("cash", "cash"),
    ):
        lines.append(f"{label:24}{_money(h[f'{col}_before']):>16}{_money(h[f'{col}_after']):>16}")
    lines.append(
        f"{'leverage':24}{_ratio(h['leverage_before']):>16}{_ratio(h['leverage_after']):>16}"
    )
    lines += ["", f"rules that fired: {h['triggered_rules'] or 'none'}"]
    if h["binding_rules"]:
        lines.append(f"binding after the trades: {h['binding_rules']}")
    trades = result.trades.filter(pl.col("holder_id") == holder_id)
    if trades.is_empty():
        lines.append("no trades")
    else:
        by_round = "round" in trades.columns
        lines += ["", "trades:"]
        for t in trades.sort(*(["round"] if by_round else []), "asset_id").iter_rows(named=True):
            day = f"day {t['day']}, " if result.days is not None else ""
            when = f"{day}round {t['round']}: " if by_round else ""
            lines.append(
                f"  {when}{t['asset_id']}: {t['trade_quantity']:+,.4g} units, "
                f"{_money(t['trade_value'])} ({t['rules']})"
            )
        lines.append(f"sold {_money(h['sold'])}, bought {_money(h['bought'])}")
    if "loss_total" in h and h["loss_total"] is not None:
        lines += [
            "",
            "losses: "
            + ", ".join(
                f"{name} {_money(h[f'loss_{key}'])}"
                for name, key in (
                    ("direct", "direct"),
                    ("own impact", "own_impact"),
                    ("others' impact", "others_impact"),
                    ("execution", "execution"),
                    ("lending", "lending"),
                    ("total", "total"),
                )
            ),
            "systemicness over the cascade "
            + _ratio(h["cascade_systemicness"])
            + ", indirect vulnerability "
            + _ratio(h["cascade_indirect_vulnerability"]),
        ]
    if result.chain is not None:
        pushed = result.chain.filter(pl.col("source_id") == holder_id)
        if not pushed.is_empty():
            targets = sorted(set(pushed["target_id"]))
            lines.append(f"its sales pushed: {', '.join(targets)}")
    return "\n".join(lines)
