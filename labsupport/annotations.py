"""Thread-safety annotations: a function says which locks its caller must hold, checked exactly.

In December 2022 QEMU imported clang's Thread Safety Analysis (TSA) macros: ``TSA_REQUIRES``,
``TSA_REQUIRES_SHARED``, ``TSA_EXCLUDES``, ``TSA_ACQUIRE``, ``TSA_RELEASE``, ``TSA_GUARDED_BY``
and the escape hatch ``TSA_NO_TSA``. A function annotated ``GRAPH_RDLOCK`` may be called only
with the block-graph lock held (at least shared). Clang checks this when it compiles; here the
same promises are decorators on the course's generator functions, and the simulation checks
them *when the function runs*, exactly, because it knows which thread (and which coroutine)
holds what. ``labsupport.tsa`` reads the same decorators from the source, with clang's limits.

Locks are named by an expression string resolved at call time (``"bs.reqs_lock"`` against the
call's arguments, ``"graph_lock"`` against the function's globals, closure or the simulation's
declared capabilities) or given as objects. A broken promise is a ``TSAViolation``: recorded
(the default) and reported, or raised with ``set_tsa_mode(sim, "raise")``.

Layer 2 (primitives): imports the kernel, the primitives and shared variables.
"""

from __future__ import annotations

import functools
import inspect
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import tracebuf as tb
from . import validate
from .kernel import MisuseError, RunResult, Simulation, Step, Thread, state_repr
from .shared import Shared

#: The kinds of promise, in the words of clang's attributes.
KINDS = (
    "requires",
    "requires_shared",
    "excludes",
    "acquires",
    "acquires_shared",
    "releases",
    "releases_shared",
)

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)*$")


class TSAViolation(MisuseError):
    """A thread-safety promise was broken at run time (raised in ``"raise"`` mode)."""

    def __init__(self, violation: Violation):
        super().__init__(violation.text)
        self.violation = violation


@dataclass(frozen=True)
class Violation:
    """One broken promise: which function, which lock, which thread (and coroutine), when."""

    time: float
    function: str
    lock: str
    thread: str
    coroutine: str | None
    kind: str
    text: str


@dataclass
class _TSAState:
    """What the run-time checker keeps per simulation (in ``sim.extension``)."""

    mode: str = "record"
    capabilities: dict[str, Any] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)


def _tsa(sim: Simulation) -> _TSAState:
    return sim.extension("annotations.tsa", _TSAState)


@dataclass
class TSASpec:
    """What a function promises: ``(kind, lock)`` pairs, and whether TSA is switched off."""

    promises: list[tuple[str, Any]] = field(default_factory=list)
    no_tsa: bool = False

    def locks(self, *kinds: str) -> list[Any]:
        return [lock for k, lock in self.promises if k in kinds]


def lock_text(lock: Any) -> str:
    """How a lock is named in a message: its expression string, or the object's name."""
    return lock if isinstance(lock, str) else getattr(lock, "name", repr(lock))


class _Annotation:
    """A decorator made by ``requires(...)`` and friends; ``GRAPH_RDLOCK`` is one of these."""

    def __init__(self, kind: str, locks: tuple[Any, ...]):
        if not locks:
            raise ValueError(
                f"{kind}() needs at least one lock (an expression string such as "
                f"'bs.reqs_lock', or a lock object)"
            )
        for lock in locks:
            if lock is None or isinstance(lock, (int, float, bytes, list, tuple, dict, set)):
                raise TypeError(
                    f"{kind}(): each lock is an expression string such as 'bs.reqs_lock' or a "
                    f"lock object; got {lock!r}"
                )
            if isinstance(lock, str) and not _DOTTED.match(lock):
                raise ValueError(
                    f"{kind}(): a lock expression is a dotted name such as "
                    f"'self.lock' or 'graph_lock'; got {lock!r}"
                )
        self.kind = kind
        self.locks = locks

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        wrapper = _wrap(fn)
        wrapper.__tsa__.promises[:0] = [(self.kind, lock) for lock in self.locks]
        return wrapper

    def __repr__(self) -> str:
        return f"{self.kind}({', '.join(repr(lock_text(x)) for x in self.locks)})"


def requires(*locks: Any) -> _Annotation:
    """``@requires("lock")`` (``TSA_REQUIRES``): the caller must hold the lock exclusively."""
    return _Annotation("requires", locks)


def requires_shared(*locks: Any) -> _Annotation:
    """``@requires_shared("lock")`` (``TSA_REQUIRES_SHARED``): held in any mode."""
    return _Annotation("requires_shared", locks)


def excludes(*locks: Any) -> _Annotation:
    """``@excludes("lock")`` (``TSA_EXCLUDES``): the caller must not hold the lock."""
    return _Annotation("excludes", locks)


def acquires(*locks: Any) -> _Annotation:
    """``@acquires("lock")`` (``TSA_ACQUIRE``): not held on entry, held exclusively on return."""
    return _Annotation("acquires", locks)


def acquires_shared(*locks: Any) -> _Annotation:
    """``@acquires_shared("lock")``: not held on entry, held (shared) on return."""
    return _Annotation("acquires_shared", locks)


def releases(*locks: Any) -> _Annotation:
    """``@releases("lock")`` (``TSA_RELEASE``): held on entry, not held on return."""
    return _Annotation("releases", locks)


def releases_shared(*locks: Any) -> _Annotation:
    """``@releases_shared("lock")``: held (shared) on entry, not held on return."""
    return _Annotation("releases_shared", locks)


def no_tsa(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``@no_tsa`` (``TSA_NO_TSA``): the static pass does not analyse this function's body (the
    escape hatch, for code it cannot follow, such as a lock's own implementation). Its promises
    still bind its callers, and the run-time checks still run, as in clang."""
    validate.function("fn", fn, kind="a generator function")
    wrapper = _wrap(fn)
    wrapper.__tsa__.no_tsa = True
    return wrapper


def _wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    if hasattr(fn, "__tsa__"):
        return fn  # stacked decorators share one wrapper and one spec
    if not inspect.isgeneratorfunction(fn):
        raise TypeError(
            f"thread-safety annotations go on generator functions (thread or "
            f"coroutine bodies, helpers used with 'yield from'); "
            f"{getattr(fn, '__name__', fn)!r} is not one"
        )
    spec = TSASpec()

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        if not spec.promises:
            return (yield from fn(*args, **kwargs))
        resolved = _resolve_all(fn, spec, args, kwargs)
        _check_entry(fn, resolved)
        result = yield from fn(*args, **kwargs)
        _check_exit(fn, resolved)
        return result

    wrapper.__tsa__ = spec
    return wrapper


def tsa_spec(fn: Any) -> TSASpec | None:
    """The promises of an annotated function, or None."""
    return getattr(fn, "__tsa__", None)


# -- naming locks ------------------------------------------------------------------------------


def _check_capability_name(name: Any) -> None:
    validate.label("name", name)
    if not _DOTTED.match(name) or "." in name:
        raise ValueError(f"name must be an identifier such as 'graph_lock'; got {name!r}")


def declare_capability(sim: Simulation, name: str, lock: Any) -> Any:
    """Give ``lock`` a global name in ``sim`` (as ``graph_lock`` is one global in QEMU), so an
    annotation can say ``"graph_lock"`` without the lock being an argument."""
    validate.instance("sim", sim, Simulation, kind="a Simulation")
    _check_capability_name(name)
    if lock is None:
        raise ValueError("lock must be a lock object; got None")
    _tsa(sim).capabilities[name] = lock
    return lock


def declared_capability(sim: Simulation, name: str) -> Any:
    """The lock ``declare_capability`` named ``name`` in ``sim``, or None."""
    validate.instance("sim", sim, Simulation, kind="a Simulation")
    _check_capability_name(name)
    return _tsa(sim).capabilities.get(name)


def _sim_of(values: list[Any]) -> Simulation | None:
    for v in values:
        if isinstance(v, Simulation):
            return v
        sim = getattr(v, "sim", None)
        if isinstance(sim, Simulation):
            return sim
    return None


def _nonlocals(fn: Callable[..., Any]) -> dict[str, Any]:
    """The closure variables of ``fn`` and their current values (what ``inspect.getclosurevars``
    reports as ``nonlocals``, without its scan of globals and builtins, on every call)."""
    code = getattr(fn, "__code__", None)
    cells = getattr(fn, "__closure__", None) or ()
    out: dict[str, Any] = {}
    if code is not None:
        for name, cell in zip(code.co_freevars, cells):
            try:
                out[name] = cell.cell_contents
            except ValueError:  # a cell not filled yet
                pass
    return out


_SIGNATURES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    """``inspect.signature(fn)``, worked out once per function (it is asked on every call)."""
    try:
        return _SIGNATURES[fn]
    except (KeyError, TypeError):
        sig = inspect.signature(fn)
        try:
            _SIGNATURES[fn] = sig
        except TypeError:  # pragma: no cover - not weak-referenceable
            pass
        return sig


def _resolve(fn: Callable[..., Any], expr: Any, bound: dict[str, Any]) -> Any:
    if not isinstance(expr, str):
        return expr
    first, *rest = expr.split(".")
    scope = _nonlocals(fn)
    if first in bound:
        obj = bound[first]
    elif first in scope:
        obj = scope[first]
    elif first in fn.__globals__:
        obj = fn.__globals__[first]
    else:
        sim = _sim_of(list(bound.values()) + list(scope.values())) or Simulation.active
        caps = _tsa(sim).capabilities if sim is not None else {}
        if first not in caps:
            raise MisuseError(
                f"{fn.__name__}: cannot tell which lock {expr!r} is: name an argument, a "
                f"global or a closure variable, or declare it with declare_capability(sim, "
                f"{first!r}, lock)"
            )
        obj = caps[first]
    for attr in rest:
        obj = getattr(obj, attr)
    return obj


def _resolve_all(
    fn: Callable[..., Any], spec: TSASpec, args: tuple, kwargs: dict
) -> list[tuple[str, str, Any]]:
    try:
        bound = _signature(fn).bind(*args, **kwargs)
        bound.apply_defaults()
        names = dict(bound.arguments)
    except TypeError:
        names = {}
    return [(kind, lock_text(lock), _resolve(fn, lock, names)) for kind, lock in spec.promises]


# -- who holds what ----------------------------------------------------------------------------


def current_coroutine_of(thread: Thread | None) -> Any:
    """The coroutine ``thread`` is running, if any (read from the thread's local stack)."""
    stack = thread.local.get("coroutines") if thread is not None else None
    return stack[-1] if stack else None


def held_mode(lock: Any, thread: Thread | None) -> str | None:
    """How ``thread`` (or the coroutine it runs) holds ``lock``: "exclusive", "shared" or None.

    A lock can answer for itself with a ``tsa_holds(thread)`` method (the graph lock does);
    otherwise the kernel's locks are read: owner, writer, readers, a coroutine mutex's holder.
    """
    if thread is None:
        return None
    if hasattr(lock, "tsa_holds"):
        return lock.tsa_holds(thread)
    if hasattr(lock, "mutex"):  # a ProfiledLock (the BQL, an AioContext lock)
        return held_mode(lock.mutex, thread)
    if hasattr(lock, "writer") and hasattr(lock, "readers"):  # RWLock
        if lock.writer is thread:
            return "exclusive"
        return "shared" if thread in lock.readers else None
    if hasattr(lock, "owner"):  # QemuMutex, QemuRecMutex, RFifoLock
        return "exclusive" if lock.owner is thread else None
    if hasattr(lock, "holder"):  # CoMutex: held by a coroutine
        co = current_coroutine_of(thread)
        return "exclusive" if co is not None and lock.holder is co else None
    raise MisuseError(f"cannot tell who holds {lock!r}; give it a tsa_holds(thread) method")


def _who(sim: Simulation) -> tuple[Thread | None, str, str | None]:
    t = sim.current
    co = current_coroutine_of(t)
    return t, (t.name if t is not None else "?"), (co.name if co is not None else None)


def record_violation(sim: Simulation, function: str, lock: str, kind: str, what: str) -> None:
    """Record (or, in "raise" mode, raise) a broken promise in the current thread."""
    t, tname, coname = _who(sim)
    where = f"thread {tname}" + (f" (coroutine {coname})" if coname else "")
    text = f"TSA at t={sim.now:g} us: {what} [{where}]"
    v = Violation(sim.now, function, lock, tname, coname, kind, text)
    state = _tsa(sim)
    state.violations.append(v)
    sim.record(
        tb.OP,
        t.tid if t is not None else -1,
        sim.label("note", f"TSA: {function} {kind} {lock}"),
        None,
    )
    if state.mode == "raise":
        raise TSAViolation(v)


def _sim_for(resolved: list[tuple[str, str, Any]]) -> Simulation:
    sim = _sim_of([lock for _k, _n, lock in resolved]) or Simulation.active
    if sim is None:
        raise MisuseError("an annotated function's locks must belong to a simulation")
    return sim


def _check_entry(fn: Callable[..., Any], resolved: list[tuple[str, str, Any]]) -> None:
    sim = _sim_for(resolved)
    me = sim.current
    name = fn.__name__
    for kind, text, lock in resolved:
        mode = held_mode(lock, me)
        if kind == "requires" and mode != "exclusive":
            record_violation(
                sim,
                name,
                text,
                kind,
                f"calling `{name}` requires holding `{text}` "
                f"exclusively" + (" (it is held only shared)" if mode else ""),
            )
        elif kind in ("requires_shared", "releases_shared") and mode is None:
            record_violation(
                sim, name, text, kind, f"calling `{name}` requires holding `{text}` (shared)"
            )
        elif kind == "releases" and mode != "exclusive":
            record_violation(
                sim,
                name,
                text,
                kind,
                f"calling `{name}` requires holding `{text}`, which it releases",
            )
        elif kind in ("excludes", "acquires", "acquires_shared") and mode is not None:
            record_violation(
                sim,
                name,
                text,
                kind,
                f"calling `{name}` requires NOT holding `{text}`, but it is held ({mode})",
            )


def _check_exit(fn: Callable[..., Any], resolved: list[tuple[str, str, Any]]) -> None:
    sim = _sim_for(resolved)
    me = sim.current
    name = fn.__name__
    for kind, text, lock in resolved:
        mode = held_mode(lock, me)
        if kind in ("acquires", "acquires_shared") and mode is None:
            record_violation(sim, name, text, kind, f"`{name}` returned without acquiring `{text}`")
        elif kind in ("releases", "releases_shared") and mode is not None:
            record_violation(
                sim,
                name,
                text,
                kind,
                f"`{name}` returned but `{text}` is still held ({mode}): the release had no effect",
            )


# -- guarded data ------------------------------------------------------------------------------


class GuardedShared(Shared):
    """A ``Shared`` variable with ``TSA_GUARDED_BY(lock)``: reading it needs the lock held (at
    least shared), writing it needs it held exclusively. Made by ``guarded_by(lock)(var)``."""

    def __init__(self, var: Shared, lock: Any):
        self.__dict__.update(var.__dict__)
        self.guard = lock
        self.sim.objects[self.oid] = self  # the simulation's registry names this one now
        self._load_op = _guarded_step(self, var._load_op, write=False)

    def store(self, value: Any):
        return _guarded_step(self, Shared.store(self, value), write=True)

    def __repr__(self) -> str:
        return state_repr(
            self, f"guarded_by {lock_text(self.guard)}", name=f"{self.name} = {self._value!r}"
        )

    def qatomic_add(self, n: int = 1):
        return _guarded_step(self, Shared.qatomic_add(self, n), write=True)

    def _check(self, write: bool) -> None:
        sim = self.sim
        mode = held_mode(self.guard, sim.current)
        text = lock_text(self.guard)
        if write and mode != "exclusive":
            record_violation(
                sim,
                self.name,
                text,
                "guarded_by",
                f"writing `{self.name}` requires holding `{text}` exclusively",
            )
        elif not write and mode is None:
            record_violation(
                sim,
                self.name,
                text,
                "guarded_by",
                f"reading `{self.name}` requires holding `{text}`",
            )


def _guarded_step(var: GuardedShared, op: Any, write: bool) -> Any:
    inner = op.fn

    def fn(t: Thread) -> bool:
        var._check(write)
        return inner(t)

    return Step(fn)


class GuardedAttr:
    """A class attribute with ``TSA_GUARDED_BY(lock)``: ``children = GuardedAttr("graph_lock")``.

    The lock expression is resolved against the instance (``"self.lock"``) or the simulation's
    declared capabilities (``"graph_lock"``). Reads need it held (shared is enough), writes need
    it exclusively; writes from set-up code (no thread running) are not checked.
    """

    def __init__(self, lock: str):
        validate.label("lock", lock, kind="a lock expression string such as 'self.lock'")
        if not _DOTTED.match(lock):
            raise ValueError(
                f"lock must be a dotted name such as 'self.lock' or 'graph_lock'; got {lock!r}"
            )
        self.lock = lock
        self.attr = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = name

    def __repr__(self) -> str:
        return state_repr(self, f"guarded_by {self.lock}", name=self.attr)

    def _lock(self, obj: Any) -> Any:
        first, *rest = self.lock.split(".")
        if first == "self":
            target = obj
        else:
            caps = _tsa(obj.sim).capabilities
            if first not in caps:
                raise MisuseError(
                    f"{type(obj).__name__}.{self.attr} is guarded by "
                    f"{self.lock!r}, which is not declared in this simulation"
                )
            target = caps[first]
        for a in rest:
            target = getattr(target, a)
        return target

    def _check(self, obj: Any, write: bool) -> None:
        sim = obj.sim
        if sim.current is None:
            return
        mode = held_mode(self._lock(obj), sim.current)
        what = f"{getattr(obj, 'name', type(obj).__name__)}.{self.attr}"
        if write and mode != "exclusive":
            record_violation(
                sim,
                what,
                self.lock,
                "guarded_by",
                f"writing `{what}` requires holding `{self.lock}` exclusively",
            )
        elif not write and mode is None:
            record_violation(
                sim,
                what,
                self.lock,
                "guarded_by",
                f"reading `{what}` requires holding `{self.lock}`",
            )

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        self._check(obj, write=False)
        return obj.__dict__[self.attr]

    def __set__(self, obj: Any, value: Any) -> None:
        self._check(obj, write=True)
        obj.__dict__[self.attr] = value


def guarded_by(lock: Any) -> Callable[[Shared], GuardedShared]:
    """``x = guarded_by(m)(Shared(sim, "x"))`` (``TSA_GUARDED_BY``): accesses to ``x`` from a
    thread that does not hold ``m`` are violations. For attributes use ``GuardedAttr``."""

    def wrap(var: Shared) -> GuardedShared:
        if not isinstance(var, Shared):
            raise TypeError(
                f"guarded_by(lock) wraps a Shared variable; got {var!r} "
                f"(for a class attribute, use GuardedAttr)"
            )
        if lock is None or isinstance(lock, (str, int, float, list, tuple, dict, set)):
            raise TypeError(
                f"lock must be a lock object (guarded_by(m)(var); for a lock named by an "
                f"expression string, use GuardedAttr); got {lock!r}"
            )
        return GuardedShared(var, lock)

    return wrap


# -- modes and reports -------------------------------------------------------------------------


def set_tsa_mode(sim: Simulation, mode: str) -> None:
    """``"record"`` (default: note the violation, go on) or ``"raise"`` (stop the run with a
    ``TSAViolation``, which ``run`` passes up)."""
    validate.instance("sim", sim, Simulation, kind="a Simulation")
    if mode not in ("record", "raise"):
        raise ValueError(f"the TSA mode is 'record' or 'raise'; got {mode!r}")
    _tsa(sim).mode = mode


def tsa_violations(where: Any) -> list[Violation]:
    """The violations recorded in a ``Simulation`` or a ``RunResult``'s simulation."""
    validate.instance("where", where, (Simulation, RunResult), kind="a Simulation or a RunResult")
    sim = where if isinstance(where, Simulation) else getattr(where, "sim", None)
    return list(_tsa(sim).violations) if isinstance(sim, Simulation) else []


def tsa_report(where: Any) -> str:
    """The recorded violations as text, one a line (or a line saying there were none)."""
    vs = tsa_violations(where)
    if not vs:
        return "TSA at run time: no violations"
    return "\n".join(v.text for v in vs)


__all__ = [
    "GuardedAttr",
    "GuardedShared",
    "KINDS",
    "TSASpec",
    "TSAViolation",
    "Violation",
    "acquires",
    "acquires_shared",
    "declare_capability",
    "declared_capability",
    "excludes",
    "guarded_by",
    "held_mode",
    "lock_text",
    "no_tsa",
    "record_violation",
    "releases",
    "releases_shared",
    "requires",
    "requires_shared",
    "set_tsa_mode",
    "tsa_report",
    "tsa_spec",
    "tsa_violations",
]
