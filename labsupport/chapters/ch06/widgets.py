"""Chapter 6's lab: a stream of guest reads, a graph change, and the graph lock's writer.

The sliders set how many reads per millisecond the guest submits and over how many IOThreads;
the toggles switch the writer's no-poll drain on or off and bring back D6 (the writer polls with
``has_writer=1`` while a main-loop callback reads the graph) and D7 (the graph change drains
while holding the write lock). ``view`` runs chapter 6's model (``scenarios.run_graph``), prints
the writer's wait, the read throughput and the outcome (with the deadlock report when
there is one), and draws the readers holding the lock over time. Nothing is computed here.
``scheduler_lab`` makes the learner the scheduler of D6, with a timing where the order decides.

Layer 9 (chapters): imports the layers below; ipywidgets only when a widget is built.
"""

from __future__ import annotations

from typing import Any

from labsupport import stepper, validate
from labsupport.optional import need
from labsupport.present import PALETTE
from labsupport.stepper import Level
from labsupport.widgets import budgeted, int_slider

from .scenarios import STARVE, GraphConfig, GraphRun, classify, graph_program, run_graph

#: The lab's run: the starvation measurement's reader stream, 40 reads per ms for 1.5 ms of
#: simulated time, the graph change at 300 us.
LAB = STARVE.replace(rate_per_ms=40.0, duration_us=1_500.0)


def lab_config(
    reader_rate: int, iothreads: int, drain_first: bool, d6: bool, d7: bool
) -> GraphConfig:
    """The ``GraphConfig`` that the controls describe."""
    per_ms = "a whole number of reads per ms"
    validate.whole("reader_rate", reader_rate, 0, 400, kind=per_ms, verb="is")
    for name, v in (("drain_first", drain_first), ("d6", d6), ("d7", d7)):
        validate.flag(name, v, verb="is")
    return LAB.replace(
        rate_per_ms=float(reader_rate),
        iothreads=iothreads,
        drain_first=drain_first,
        d6_bug=d6,
        sync_reader=d6,
        drain="inside" if d7 else "none",
    )


def view(
    reader_rate: int = 40,
    iothreads: int = 2,
    drain_first: bool = True,
    d6: bool = False,
    d7: bool = False,
    seed: int = 0,
    plot: bool = True,
) -> GraphRun:
    """Run the lab's model once, print what happened, draw the readers over time; return it."""
    g = run_graph(lab_config(reader_rate, iothreads, drain_first, d6, d7), seed=seed, trace=False)
    print(g.summary())
    if g.result.deadlock is not None:
        print()
        print(g.result.deadlock.text())
        print(g.diagnosis())
    if plot:
        _plot(g)
    return g


def _plot(g: GraphRun) -> None:
    plt = need("matplotlib.pyplot", "This figure")

    hist = g.model.gl.history
    xs = [t for t, _n, _w in hist] + [g.result.time]
    ys = [n for _t, n, _w in hist] + [hist[-1][1]]
    fig, ax = plt.subplots(figsize=(7, 2.6), facecolor="white")
    ax.step(xs, ys, where="post", color=PALETTE[0], label="readers holding the graph lock")
    start = g.cfg.change_at_us
    ax.axvline(start, color=PALETTE[5], linestyle="--", label="writer asks (wrlock)")
    wait = g.writer_wait_us
    if wait is not None:
        ax.axvline(
            start + wait, color=PALETTE[2], linestyle=":", linewidth=2, label="writer gets the lock"
        )
    ax.set_xlabel("simulated time (us)")
    ax.set_ylabel("readers")
    ax.set_title(f"{g.outcome}: writer wait {'never' if wait is None else f'{wait:,.0f} us'}")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    plt.show()


def lab(reader_rate: int = 40, iothreads: int = 2) -> Any:
    """Sliders for reads per ms (the first) and IOThreads, toggles for the writer's drain, D6
    and D7, over ``view``; ``.result`` holds the last ``GraphRun``."""
    import ipywidgets as w

    def toggle(value: bool, description: str) -> Any:
        return w.Checkbox(
            value=value, description=description, style={"description_width": "initial"}
        )

    return w.interactive(
        budgeted(view),
        reader_rate=int_slider(
            reader_rate, 0, 400, "reads per ms", 10, label_width="160px", name="reader_rate"
        ),
        iothreads=int_slider(iothreads, 1, 4, "IOThreads", label_width="160px", name="iothreads"),
        drain_first=toggle(True, "writer drains first (no-poll)"),
        d6=toggle(False, "D6: writer polls with has_writer=1"),
        d7=toggle(False, "D7: drain under the write lock"),
        seed=w.fixed(0),
        plot=w.fixed(True),
    )


__all__ = ["LAB", "lab", "lab_config", "view"]


# -- be the scheduler --------------------------------------------------------------------------

#: D6 with fixed timing: one read arrives at 10 us and holds the read lock for the disk's 40 us,
#: so it lets go at 50 us, when the graph change starts and the main loop's query arrives:
#: whether the writer finds a reader (and polls with ``has_writer`` set) is the schedule's call.
LEVEL = GraphConfig(
    d6_bug=True,
    sync_reader=True,
    requests=1,
    arrivals=(10.0,),
    query_after_us=0.0,
    submit_us=0.0,
    walk_us=0.0,
    complete_us=0.0,
)


def _d6(result: Any) -> str | None:
    if classify(GraphRun(LEVEL, result, result.sim.model)) != "deadlock":
        return None
    return (
        "the writer polls with has_writer set, and the main loop's own reader sleeps until "
        "the writer is done: the main loop waits for itself"
    )


def scheduler_level() -> Level:
    """D6: the graph writer polls with ``has_writer`` set while the main loop reads."""
    return Level(
        "D6: the graph writer polls with has_writer set",
        graph_program(LEVEL),
        "at t=50 us an IOThread's read lets go of the graph lock, the main loop starts a graph "
        "change (bdrv_graph_wrlock) and a query reads the graph from the main loop: make the "
        "main loop wait for itself",
        _d6,
        run_options={"cpus": LEVEL.iothreads + 2},
        opaque=True,
    )


def scheduler_lab() -> Any:
    """Chapter 6's level of ``labsupport.stepper``, as a widget."""
    return stepper.lab(scheduler_level())
