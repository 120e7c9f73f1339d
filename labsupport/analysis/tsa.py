"""A static thread-safety pass over Python source, with the limits of clang's analysis.

Clang's Thread Safety Analysis (``-Wthread-safety``, imported by QEMU in December 2022) checks
each function on its own, before the program runs: it starts from what the function's
annotations promise (``GRAPH_RDLOCK``: the graph lock is held shared), follows the lock and
unlock calls in the body, and warns when a callee's annotation is not met or a guarded variable
is touched without its lock. It reads the callee's *annotations*, never the callee's body; it
does not know that two names refer to the same lock (no aliasing); and it cannot check a call
through a function pointer, since annotations are not part of a function's type. This module
does the same over the course's annotated generator functions (``ast`` + ``inspect``), so its
blind spots are clang's: an unlock whose annotation says "releases" but that releases nothing
at run time makes the check pass (the 2025 drain deadlock's lesson).

Layer 5 (analysis): imports the kernel and the annotations.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import validate
from ..annotations import GuardedShared, TSASpec, lock_text, tsa_spec

_LOCK_METHODS = {"lock": "exclusive", "wrlock": "exclusive", "rdlock": "shared", "unlock": None}
_READS = {"load"}
_WRITES = {"store", "increment", "qatomic_add", "qatomic_inc"}


@dataclass(frozen=True)
class Finding:
    """One warning: where (the line, counting the ``def`` line as 1), and what, in the words
    of clang's -Wthread-safety."""

    function: str
    line: int
    message: str

    @property
    def text(self) -> str:
        return f"{self.function}, line {self.line}: warning: {self.message} [-Wthread-safety]"


@dataclass
class StaticReport:
    """What the static pass found over the functions it was given."""

    checked: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def messages(self) -> list[str]:
        return [f.message for f in self.findings]

    def text(self) -> str:
        lines = [f.text for f in self.findings]
        n = len(self.findings)
        head = (
            f"static TSA: {len(self.checked)} function(s) checked, "
            f"{n} warning{'s' if n != 1 else ''}"
        )
        if self.skipped:
            head += f" ({', '.join(self.skipped)} skipped: no_tsa)"
        return "\n".join([head] + lines)

    def __str__(self) -> str:
        return self.text()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text())


def _namespace(fn: Callable[..., Any]) -> dict[str, Any]:
    ns = dict(getattr(fn, "__globals__", {}))
    try:
        ns.update(inspect.getclosurevars(fn).nonlocals)
    except (TypeError, ValueError):  # pragma: no cover
        pass
    return ns


def _name_of(lock: Any, ns: dict[str, Any]) -> str:
    """A lock object's name as the source would write it: a variable bound to it, if any."""
    if isinstance(lock, str):
        return lock
    for k, v in ns.items():
        if v is lock:
            return k
    return lock_text(lock)


class _Checker(ast.NodeVisitor):
    def __init__(
        self,
        fn: Callable[..., Any],
        name: str,
        spec: TSASpec | None,
        ns: dict[str, Any],
        first_line: int,
    ):
        self.fn_name = name
        self.ns = ns
        self.first_line = first_line
        self.findings: list[Finding] = []
        self.held: dict[str, str] = {}
        spec = spec or TSASpec()
        for kind, lock in spec.promises:
            text = _name_of(lock, ns)
            if kind in ("requires", "releases"):
                self.held[text] = "exclusive"
            elif kind in ("requires_shared", "releases_shared"):
                self.held[text] = "shared"
        self.expected_end = dict(self.held)
        for kind, lock in spec.promises:
            text = _name_of(lock, ns)
            if kind in ("releases", "releases_shared"):
                self.expected_end.pop(text, None)
            elif kind == "acquires":
                self.expected_end[text] = "exclusive"
            elif kind == "acquires_shared":
                self.expected_end[text] = "shared"

    def warn(self, node: ast.AST, message: str) -> None:
        self.findings.append(Finding(self.fn_name, self.first_line + node.lineno - 1, message))

    # Only this function's own body: nested functions and lambdas are other functions.
    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:  # noqa: N802
        pass

    visit_AsyncFunctionDef = visit_FunctionDef  # noqa: N815
    visit_Lambda = visit_FunctionDef  # noqa: N815
    visit_ClassDef = visit_FunctionDef  # noqa: N815

    def visit_Call(self, node: ast.Call) -> None:  # noqa: N802
        self.generic_visit(node)  # arguments are evaluated before the call
        func = node.func
        if isinstance(func, ast.Name):
            callee = self.ns.get(func.id)
            spec = tsa_spec(callee)
            if spec is not None:
                self._apply(node, func.id, callee, spec)
            return
        if isinstance(func, ast.Attribute):
            target = ast.unparse(func.value)
            if func.attr in _LOCK_METHODS:
                self._lock_call(node, target, _LOCK_METHODS[func.attr])
            elif func.attr in _READS | _WRITES and isinstance(func.value, ast.Name):
                var = self.ns.get(func.value.id)
                if isinstance(var, GuardedShared):
                    self._guarded(node, var, func.value.id, func.attr in _WRITES)
            # any other call through an attribute or a variable is not checked (no function
            # pointers: an annotation is not part of a function's type)

    def visit_Attribute(self, node: ast.Attribute) -> None:  # noqa: N802
        self.generic_visit(node)
        if node.attr == "value" and isinstance(node.value, ast.Name):
            var = self.ns.get(node.value.id)
            if isinstance(var, GuardedShared):
                self._guarded(node, var, node.value.id, False)

    def _guarded(self, node: ast.AST, var: GuardedShared, name: str, write: bool) -> None:
        lock = _name_of(var.guard, self.ns)
        mode = self.held.get(lock)
        if write and mode != "exclusive":
            self.warn(
                node,
                f"writing `{name}` requires holding `{lock}` exclusively "
                f"(`{name}` is guarded by `{lock}`)",
            )
        elif not write and mode is None:
            self.warn(
                node,
                f"reading `{name}` requires holding `{lock}` (`{name}` is guarded by `{lock}`)",
            )

    def _lock_call(self, node: ast.Call, target: str, mode: str | None) -> None:
        if mode is None:
            if target not in self.held:
                self.warn(node, f"releasing `{target}` that was not held")
            self.held.pop(target, None)
        else:
            if target in self.held:
                self.warn(node, f"acquiring `{target}` that is already held")
            self.held[target] = mode

    def _substitute(self, text: str, node: ast.Call, callee: Any) -> str:
        first, _, rest = text.partition(".")
        try:
            params = list(inspect.signature(inspect.unwrap(callee)).parameters)
        except (TypeError, ValueError):  # pragma: no cover
            return text
        mapping: dict[str, str] = {}
        for p, arg in zip(params, node.args):
            if isinstance(arg, ast.Starred):
                break
            mapping[p] = ast.unparse(arg)
        for kw in node.keywords:
            if kw.arg:
                mapping[kw.arg] = ast.unparse(kw.value)
        if first in mapping:
            return mapping[first] + ("." + rest if rest else "")
        return text

    def _apply(self, node: ast.Call, name: str, callee: Any, spec: TSASpec) -> None:
        cns = _namespace(inspect.unwrap(callee))
        for kind, lock in spec.promises:
            text = self._substitute(_name_of(lock, cns), node, callee)
            mode = self.held.get(text)
            if kind == "requires" and mode != "exclusive":
                self.warn(node, f"calling `{name}` requires holding `{text}` exclusively")
            elif kind == "requires_shared" and mode is None:
                self.warn(node, f"calling `{name}` requires holding `{text}` (shared)")
            elif kind == "excludes" and mode is not None:
                self.warn(
                    node, f"calling `{name}` requires NOT holding `{text}`, which is held ({mode})"
                )
            elif kind in ("acquires", "acquires_shared"):
                if mode is not None:
                    self.warn(node, f"acquiring `{text}` that is already held")
                self.held[text] = "exclusive" if kind == "acquires" else "shared"
            elif kind in ("releases", "releases_shared"):
                if mode is None:
                    self.warn(node, f"releasing `{text}` that was not held")
                self.held.pop(text, None)

    def finish(self, node: ast.AST) -> None:
        for text in self.held:
            if text not in self.expected_end:
                self.warn(node, f"`{text}` is still held at the end of `{self.fn_name}`")
        for text in self.expected_end:
            if text not in self.held:
                self.warn(node, f"expecting `{text}` to be held at the end of `{self.fn_name}`")


def check_function(fn: Callable[..., Any]) -> list[Finding]:
    """The warnings for one function (annotated or not), from its source alone."""
    validate.function("fn", fn)
    spec = tsa_spec(fn)
    orig = inspect.unwrap(fn)
    name = getattr(orig, "__name__", repr(orig))
    try:
        lines, _first = inspect.getsourcelines(orig)
    except (OSError, TypeError) as e:
        raise ValueError(f"the static pass needs the source of {name}: {e}") from None
    tree = ast.parse(textwrap.dedent("".join(lines)))
    fdef = next(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    # lines are counted from the ``def`` line (line 1), so they do not move with the file
    checker = _Checker(orig, name, spec, _namespace(orig), 2 - fdef.lineno)
    for stmt in fdef.body:
        checker.visit(stmt)
    last = fdef.body[-1] if fdef.body else fdef
    checker.finish(
        ast.fix_missing_locations(
            ast.Pass(lineno=getattr(last, "end_lineno", 1) or 1, col_offset=0)
        )
    )
    return checker.findings


def static_check(*fns: Callable[..., Any]) -> StaticReport:
    """Run the static pass over ``fns`` (one at a time, as clang does) and collect warnings."""
    report = StaticReport()
    for fn in fns:
        if not callable(fn):
            raise TypeError(f"static_check() takes functions; got {fn!r}")
        spec = tsa_spec(fn)
        name = getattr(inspect.unwrap(fn), "__name__", repr(fn))
        if spec is not None and spec.no_tsa:
            report.skipped.append(name)
            continue
        report.checked.append(name)
        report.findings.extend(check_function(fn))
    return report


__all__ = ["Finding", "StaticReport", "check_function", "static_check"]
