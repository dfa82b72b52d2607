"""The evidence report as HTML (one self-contained file), PDF (WeasyPrint renders the same
HTML with print CSS) or JSON; charts are drawn with matplotlib and embedded as PNG."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import jinja2
import matplotlib

matplotlib.use("Agg")  # no display: render to memory only
import matplotlib.pyplot as plt

from signoff.audit.controls import CONTROLS
from signoff.audit.report import REFUSAL_TEXT, Evidence

STATUS_COLOURS = {"approved": "#2e7d32", "denied": "#c62828", "timed_out": "#f9a825",
                  "cancelled": "#78909c", "rejected": "#6a1b9a"}
FIGURE_TITLES = {
    "requests": "Requests by action and outcome", "grants": "Grants",
    "approvals_by_person": "Approvals by person", "tokens_created": "API tokens created",
    "self_approval_refused": "Self-approval attempts refused", "denials": "Denials",
    "forged_click_refused": "Forged or foreign clicks refused",
    "refused_clicks": "Refused clicks by reason", "sinks": "SIEM delivery",
    "policy_changes": "Policy changes", "entries_by_event": "Logged events",
    "verification": "Chain verification", "key_rotations": "Key rotations",
    "samples": "Sampled entries with inclusion proofs"}


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=160, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def chart_weekly(ev: Evidence) -> str | None:
    """Stacked bars: decisions per week by outcome."""
    if not ev.weekly:
        return None
    weeks = list(ev.weekly)
    fig, ax = plt.subplots(figsize=(7.2, 2.6))
    bottom = [0] * len(weeks)
    for status, colour in STATUS_COLOURS.items():
        values = [ev.weekly[w].get(status, 0) for w in weeks]
        if any(values):
            ax.bar(range(len(weeks)), values, bottom=bottom, color=colour,
                   label=status.replace("_", " "), width=0.7)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    step = max(1, len(weeks) // 12)
    ax.set_xticks(range(0, len(weeks), step), [w[5:] for w in weeks[::step]], fontsize=7)
    ax.set_ylabel("decisions", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title("Decisions per week (week starting)", fontsize=9, loc="left")
    ax.legend(fontsize=7, frameon=False, ncols=5, loc="upper left", bbox_to_anchor=(0, -0.15))
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def chart_decision_time(ev: Evidence) -> str | None:
    """Histogram of time to decision (minutes) with the median and p95 marked."""
    if not ev.decision_seconds:
        return None
    minutes = [s / 60 for s in ev.decision_seconds]
    fig, ax = plt.subplots(figsize=(7.2, 2.4))
    ax.hist(minutes, bins=min(40, max(5, len(minutes) // 3)), color="#1565c0", alpha=0.85)
    for value, label, style in ((ev.median_seconds, "median", "--"), (ev.p95_seconds, "p95", ":")):
        if value is not None:
            ax.axvline(value / 60, color="#212121", linestyle=style, linewidth=1)
            ax.text(value / 60, ax.get_ylim()[1] * 0.92, f" {label} {_duration(value)}",
                    fontsize=7)
    ax.set_xlabel("minutes from request to a person's decision", fontsize=8)
    ax.set_ylabel("requests", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title("Time to decision", fontsize=9, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(float(ts), tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _whenshort(ts: float) -> str:
    return datetime.fromtimestamp(float(ts), tz=UTC).strftime("%Y-%m-%d %H:%M")


def _refusal(code: str) -> str:
    return REFUSAL_TEXT.get(code, code.replace("_", " "))


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["duration"] = _duration
    env.filters["whenshort"] = _whenshort
    env.filters["refusal"] = _refusal
    text = resources.files("signoff.audit").joinpath("report.html.j2").read_text()
    return env.from_string(text)


def render_html(ev: Evidence, *, for_print: bool = False) -> str:
    outcomes = sorted({o for row in ev.requests.values() for o in row},
                      key=lambda o: (o not in STATUS_COLOURS, list(STATUS_COLOURS).index(o)
                                     if o in STATUS_COLOURS else 0, o))
    return _template().render(
        ev=ev, controls=CONTROLS, titles=FIGURE_TITLES, outcomes=outcomes,
        weekly_chart=chart_weekly(ev), time_chart=chart_decision_time(ev),
        for_print=for_print, rows=15 if for_print else 50, median=_duration(ev.median_seconds),
        p95=_duration(ev.p95_seconds))


class PdfUnavailable(Exception):
    """WeasyPrint cannot load its system libraries (Pango)."""


def render_pdf(ev: Evidence) -> bytes:
    try:
        import weasyprint  # imported here: it loads Pango, which only the PDF needs
    except (ImportError, OSError) as exc:
        raise PdfUnavailable(
            "PDF output needs WeasyPrint and the Pango library (Debian: apt-get install "
            f"libpango-1.0-0 libpangoft2-1.0-0); --format html prints the same report ({exc})"
        ) from None
    return bytes(weasyprint.HTML(string=render_html(ev, for_print=True)).write_pdf())


def render_json(ev: Evidence) -> str:
    return json.dumps(ev.to_dict(), indent=2, sort_keys=True, default=str)
