"""Chapter 6's figure: how long the block-graph writer waits among readers (D6's neighbour).

The 2023 graph lock lets any number of readers in and makes a writer wait until none is left.
A writer that polls the main loop among a stream of readers can wait long; one that first
drains the graph without polling (``bdrv_drain_all_begin_nopoll``) waits for the requests in
flight only. The figure shows the writer's wait against the rate of reads, with both; the cell
prints the table (``format_starvation``) beside it. A wait of 0 is a measurement here (at low
rates no reader is in the way), so the axis is linear up to 10 us and logarithmic above
(matplotlib's ``symlog``): a log axis would drop those points.

Layer 9 (chapters): imports the layers below; matplotlib only when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from labsupport.present import FONT_SIZE, PALETTE, new_figure

#: Below this wait (us) the figure's axis is linear, so a wait of 0 has a place on it.
LINEAR_BELOW_US = 10


def writer_wait_by_rate(
    rates: Sequence[float], rows: Sequence[Mapping[str, float]], seeds: int = 3
) -> Any:
    """The writer's wait (``starvation_table(rates, seeds)``'s rows: the medians, in us, of
    ``"no drain"`` and ``"with drain"``) against reads per ms."""
    fig, ax = new_figure(figsize=(7, 3.4))
    for key, marker, style, color, label in (
        ("no drain", "o", "-", PALETTE[5], "no drain: the writer polls among readers"),
        ("with drain", "s", "--", PALETTE[0], "no-poll drain first"),
    ):
        ax.plot(
            rates,
            [r[key] for r in rows],
            marker=marker,
            linestyle=style,
            color=color,
            label=label,
        )
    ax.set_yscale("symlog", linthresh=LINEAR_BELOW_US)
    top = max([r[k] for r in rows for k in ("no drain", "with drain")] + [LINEAR_BELOW_US])
    ticks = [0, LINEAR_BELOW_US]
    while ticks[-1] < top:
        ticks.append(ticks[-1] * 10)
    ax.set_yticks(ticks, [f"{t:,}" for t in ticks])
    ax.set_ylim(0, ticks[-1])
    ax.minorticks_off()
    ax.set_xticks(list(rates))
    ax.set_xlabel("reads per ms (2 IOThreads)")
    ax.set_ylabel("writer wait (us, log above 10)")
    ax.set_title(f"Writer wait versus reader rate (median of {seeds} seeds)")
    ax.legend(fontsize=FONT_SIZE, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


__all__ = ["LINEAR_BELOW_US", "writer_wait_by_rate"]
