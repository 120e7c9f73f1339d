"""The event stream: one compact record per thing that happened in a simulated run.

A real machine leaves no trace of the order in which its threads touched memory; a simulated one
can keep every step. Like the ring buffers of QEMU's own ``trace-events`` back ends, the stream
is written on the hot path and read afterwards, so it is stored as columns of plain numbers
(time, kind, thread, object, argument) rather than as one Python object per event: about 23
bytes an event, so a run of a million events fits in a laptop's memory.

How events pair up (what the analyses rely on):
- RUN carries its duration; SLEEP likewise.
- A BLOCK lasts until the thread's next event of any kind: a WAKE where nothing else happens on
  waking (an event set, a semaphore post, a join), otherwise the ACQUIRE of a lock handed over,
  the RUN of a CPU granted, or a BLOCK on a mutex retaken after a condition wait.
- A WAKE with argument 0 and no BLOCK before it is a wait that went through at once (a
  semaphore's count taken, an event already set, a thread already finished): the race
  detector reads it as the synchronisation it is; the trace table does not show it.
- SPAWN's argument is the thread whose step spawned it (-1 when the program did, before the run).
- ACQUIRE's argument is the new depth (1 for a first acquisition; a read lock of an RWLock is 1,
  a write lock -1); RELEASE's is the depth left, so a hold ends at a RELEASE with 0.

Layer 1 (kernel). Imports nothing from labsupport, and only the standard library (the course
also runs in a browser without numpy: ``labsupport.optional``).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import Any, NamedTuple

# Event kinds. The numbers are stored; the names are what people read.
SPAWN, RUN, BLOCK, WAKE, ACQUIRE, RELEASE, READ, WRITE, CHOICE, EXIT, OP, SLEEP, MARK, SIGNAL = (
    range(14)
)
KIND_NAMES = (
    "spawn",
    "run",
    "block",
    "wake",
    "acquire",
    "release",
    "read",
    "write",
    "choice",
    "exit",
    "op",
    "sleep",
    "mark",
    "signal",
)

# Arguments that are not small integers are interned; their index is stored above this base.
OBJ_BASE = 1 << 62
NONE_CODE = -(1 << 62)
_OBJ_BASE, _NONE = OBJ_BASE, NONE_CODE


class Event(NamedTuple):
    """One decoded event: what happened, when (us), to which thread, on which object."""

    index: int
    time: float
    kind: str
    thread: int
    obj: int
    arg: Any


class TraceBuffer:
    """Columns of numbers, filled on the hot path and decoded on demand.

    ``record((t, kind, tid, obj, arg))`` only extends one flat list; every ``BATCH`` events (and
    before any read) the list is packed into the typed columns ``t``, ``kind``, ``tid``, ``obj``
    and ``arg``. Reading any column packs first.
    """

    BATCH = 4096

    def __init__(self) -> None:
        self._t = array("d")
        self._kind = array("b")
        self._tid = array("h")
        self._obj = array("i")
        self._arg = array("q")
        self._values: list[Any] = []
        self._value_index: dict[Any, int] = {}
        self._batch: list[Any] = []
        self.record = self._batch.extend

    def pack(self) -> None:
        """Move the pending events into the columns."""
        batch = self._batch
        if not batch:
            return
        # array(typecode, list) converts in C; += appends the typed copy
        self._t += array("d", batch[0::5])
        self._kind += array("b", batch[1::5])
        self._tid += array("h", batch[2::5])
        self._obj += array("i", batch[3::5])
        args = batch[4::5]
        batch.clear()
        if set(map(type, args)) == {int}:  # the usual case: every argument a plain int
            if min(args) > -_OBJ_BASE and max(args) < _OBJ_BASE:
                self._arg += array("q", args)
                return
        lo, hi, encode = -_OBJ_BASE, _OBJ_BASE, self.encode
        self._arg.extend([a if type(a) is int and lo < a < hi else encode(a) for a in args])

    def maybe_pack(self) -> None:
        if len(self._batch) >= 5 * self.BATCH:
            self.pack()

    @property
    def t(self) -> array:
        self.pack()
        return self._t

    @property
    def kind(self) -> array:
        self.pack()
        return self._kind

    @property
    def tid(self) -> array:
        self.pack()
        return self._tid

    @property
    def obj(self) -> array:
        self.pack()
        return self._obj

    @property
    def arg(self) -> array:
        self.pack()
        return self._arg

    def columns(self) -> tuple[array, array, array, array, array]:
        """(time, kind, thread, object, argument) as typed arrays."""
        self.pack()
        return self._t, self._kind, self._tid, self._obj, self._arg

    def __len__(self) -> int:
        return len(self._kind) + len(self._batch) // 5

    def __repr__(self) -> str:
        return f"<TraceBuffer [events:{len(self)}]>"

    def encode(self, value: Any) -> int:
        """Store a small int as itself; anything else as an index into a table of values."""
        if type(value) is int and -_OBJ_BASE < value < _OBJ_BASE:
            return value
        if value is None:
            return _NONE
        try:
            idx = self._value_index.get(value)
        except TypeError:  # unhashable: store each occurrence
            idx = None
        if idx is None:
            idx = len(self._values)
            self._values.append(value)
            try:
                self._value_index[value] = idx
            except TypeError:
                pass
        return _OBJ_BASE + idx

    def decode(self, code: int) -> Any:
        if code == _NONE:
            return None
        if code >= _OBJ_BASE:
            return self._values[code - _OBJ_BASE]
        return code

    def __iter__(self) -> Iterator[Event]:
        decode = self.decode
        t, kind, tid, obj, arg = self.columns()
        for i in range(len(kind)):
            yield Event(i, t[i], KIND_NAMES[kind[i]], tid[i], obj[i], decode(arg[i]))

    def same_as(self, other: TraceBuffer) -> bool:
        """True when both streams hold the same events in the same order."""
        return self.first_difference(other) is None

    def first_difference(self, other: TraceBuffer) -> int | None:
        """Index of the first event at which two streams differ, or None if they are equal."""
        a, b = self.columns(), other.columns()
        if (
            a[:4] == b[:4]
            and all(self.decode(x) == other.decode(y) for x, y in zip(a[4], b[4]))
            and len(self) == len(other)
        ):
            return None
        n = min(len(self), len(other))
        for i in range(n):
            if any(a[c][i] != b[c][i] for c in range(4)) or (
                self.decode(a[4][i]) != other.decode(b[4][i])
            ):
                return i
        return n
