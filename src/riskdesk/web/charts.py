"""Plotly figures as HTML fragments; the page loads plotly.js from ``/static/plotly.min.js``."""

from __future__ import annotations

from typing import Any

PLOTLY_JS_URL = "/static/plotly.min.js"

_CONFIG = {"displaylogo": False, "responsive": True}

FONT = '-apple-system, "Segoe UI", "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", "WenQuanYi Micro Hei", sans-serif'


def style(fig: Any, height: int = 320) -> Any:
    """Apply the house style (fonts that render Chinese, quiet grid, tight margins)."""
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 48, "r": 16, "t": 40, "b": 40},
        font={"family": FONT, "size": 12, "color": "#1f2937"},
        colorway=["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#64748b"],
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
    )
    return fig


def plot_div(fig: Any) -> str:
    """Render a Plotly figure as a ``<div>`` (plotly.js is not inlined; no CDN)."""
    html: str = fig.to_html(full_html=False, include_plotlyjs=False, config=_CONFIG)
    return html
