"""Plotly figures from plain report rows. No Streamlit and no database here, so tests can check
each figure's series directly.

Money is plotted in major units (a float is fine for drawing; never for arithmetic), one axis per
currency: amounts of different currencies never share a scale or a sum.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.money import Money, format_amount
from core.reporting.words import PAID, PAYOUT, PLATFORM_FEE, REFUNDED

PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2"]
# One colour per currency on every chart; others get the rest of the palette in name order.
CURRENCY_COLORS = {"USD": "#54A24B", "EUR": "#4C78A8", "GBP": "#B279A2", "JPY": "#F58518"}
_SPARE = ["#72B7B2", "#E45756", "#9D755D", "#BAB0AC", "#EECA3B"]


def currency_color(currency: str) -> str:
    if currency in CURRENCY_COLORS:
        return CURRENCY_COLORS[currency]
    return _SPARE[sum(map(ord, currency)) % len(_SPARE)]


def _major(amount: int, currency: str) -> float:
    return float(Money(amount, currency).major)


def _empty(title: str, message: str) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False},
                         annotations=[{"text": message, "showarrow": False, "font": {"size": 14}}],
                         height=260)
    return figure


def build_weekly_chart(rows: Sequence) -> go.Figure:
    """Bookings per week (all currencies counted together) above what was paid per week, one panel per currency.

    `rows`: objects with week, currency, bookings, revenue_cents (see `reporting.WeeklyPoint`).
    """
    if not rows:
        return _empty("Bookings and payments by week", "No bookings in this period")
    weeks = sorted({row.week for row in rows})
    currencies = sorted({row.currency for row in rows})
    bookings: dict = defaultdict(int)
    revenue: dict = defaultdict(int)
    for row in rows:
        bookings[row.week] += row.bookings
        revenue[(row.currency, row.week)] += row.revenue_cents
    figure = make_subplots(rows=1 + len(currencies), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                           subplot_titles=["Bookings per week"] + [f"{PAID.label} per week ({c})" for c in currencies])
    figure.add_trace(go.Bar(name="Bookings", x=weeks, y=[bookings[w] for w in weeks],
                            marker_color="#6C7A89", hovertemplate="Week of %{x}<br>%{y} bookings<extra></extra>"),
                     row=1, col=1)
    for n, currency in enumerate(currencies):
        figure.add_trace(go.Scatter(
            name=f"{PAID.label} ({currency})", x=weeks, y=[_major(revenue[(currency, w)], currency) for w in weeks],
            mode="lines+markers", line={"color": currency_color(currency)},
            customdata=[format_amount(revenue[(currency, w)], currency) for w in weeks],
            hovertemplate="Week of %{x}<br>%{customdata}<extra></extra>"), row=n + 2, col=1)
        figure.update_yaxes(title_text=currency, rangemode="tozero", row=n + 2, col=1)
    figure.update_layout(title="Bookings and payments by week (UTC)", height=260 + 200 * len(currencies),
                         showlegend=False, margin={"t": 70, "b": 30})
    return figure


def build_funnel_chart(funnel) -> go.Figure:
    """Started → scheduled → paid → completed. `funnel`: a `reporting.StatusFunnel`."""
    stages = list(funnel.stages)
    if not stages or stages[0].count == 0:
        return _empty("Booking funnel", "No bookings in this period")
    figure = go.Figure(go.Funnel(name="Bookings", y=[s.label for s in stages], x=[s.count for s in stages],
                                 textinfo="value+percent initial", marker={"color": PALETTE[0]}))
    figure.update_layout(title="Booking funnel", height=340, margin={"t": 60, "b": 20})
    return figure


def build_refunds_by_reason_chart(rows: Sequence) -> go.Figure:
    """Number of refunds per reason, one bar series per currency (amounts in the hover text).

    `rows`: objects with label, currency, count, amount_cents (see `reporting.RefundReasonRow`).
    """
    if not rows:
        return _empty("Refunds by reason", "No refunds in this period")
    labels = sorted({row.label for row in rows})
    figure = go.Figure()
    for currency in sorted({row.currency for row in rows}):
        mine = {row.label: row for row in rows if row.currency == currency}
        figure.add_trace(go.Bar(
            name=currency, x=labels, y=[mine[label].count if label in mine else 0 for label in labels],
            customdata=[format_amount(mine[label].amount_cents if label in mine else 0, currency) for label in labels],
            marker_color=currency_color(currency),
            hovertemplate="%{x}<br>%{y} refunds, %{customdata}<extra>" + currency + "</extra>"))
    figure.update_layout(title="Refunds by reason", barmode="group", height=340, yaxis_title="refunds",
                         legend_title_text="Currency", margin={"t": 60, "b": 20})
    return figure


def build_earnings_chart(rows: Sequence, currency: str) -> go.Figure:
    """One currency's months: what the builder keeps (payout), the platform fee and refunds, and
    what was paid (the words of `core.reporting.words`).

    `rows`: `reporting.EarningsRow`s; rows of other currencies are ignored.
    """
    mine = sorted((row for row in rows if row.currency == currency), key=lambda row: row.month)
    if not mine:
        return _empty(f"Earnings ({currency})", "No earnings yet")
    months = [row.month.strftime("%Y-%m") for row in mine]
    figure = go.Figure()
    for name, attribute, color in ((PAYOUT.label, "payout_cents", PALETTE[2]),
                                   (PLATFORM_FEE.label, "fee_cents", PALETTE[1]),
                                   (REFUNDED.label, "refunded_cents", PALETTE[3])):
        values = [getattr(row, attribute) for row in mine]
        figure.add_trace(go.Bar(name=name, x=months, y=[_major(v, currency) for v in values],
                                customdata=[format_amount(v, currency) for v in values], marker_color=color,
                                hovertemplate="%{x}<br>" + name + ": %{customdata}<extra></extra>"))
    figure.add_trace(go.Scatter(name=PAID.label, x=months, y=[_major(row.gross_cents, currency) for row in mine],
                                mode="lines+markers", line={"color": PALETTE[0]},
                                customdata=[format_amount(row.gross_cents, currency) for row in mine],
                                hovertemplate="%{x}<br>" + PAID.label + ": %{customdata}<extra></extra>"))
    figure.update_layout(title=f"Earnings per month ({currency})", barmode="group", height=360,
                         yaxis_title=currency, margin={"t": 60, "b": 20})
    return figure
