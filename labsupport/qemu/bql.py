"""The Big QEMU Lock (2009 on): one non-recursive global mutex, profiled by call site.

QEMU's ``bql_lock()``/``bql_unlock()`` (``qemu_mutex_lock_iothread`` before 2024) guard all
device emulation; QSP (``-qsp``) reports who waited where. ``ProfiledLock`` is that profile,
reused for the AioContext lock of the IOThread years.

Layer 4 (QEMU models).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import validate
from ..kernel import Simulation, state_repr
from ..sync import QemuMutex, _OwnedLock

# --------------------------------------------------------------------------------------------
# The Big QEMU Lock, with contention kept per call site (as QEMU's QSP profiler does).


@dataclass
class SiteStats:
    """One call site's use of a lock: acquisitions, how many waited, wait and hold time (us)."""

    site: str
    acquisitions: int = 0
    contended: int = 0
    wait_us: float = 0.0
    hold_us: float = 0.0


class ProfiledLock:
    """A lock that keeps contention per call site, as QEMU's synchronisation profiler (QSP) does.

    ``yield lock.lock("monitor: info block")`` names the caller; ``profile()`` then says who
    waited for the lock and who held it how long. It wraps any of the kernel's owned locks
    (``QemuMutex``, ``QemuRecMutex``, ``RFifoLock``); for a recursive one only the outermost
    acquisition is timed.
    """

    def __init__(self, mutex: Any, ctx: Any = None):
        validate.instance("mutex", mutex, _OwnedLock, kind="a QemuMutex, QemuRecMutex or RFifoLock")
        self.mutex = mutex
        self.sim = mutex.sim
        self.name = mutex.name
        #: the AioContext whose lock this is (None for the BQL)
        self.ctx = ctx
        self.sites: dict[str, SiteStats] = {}
        self._since: dict[int, tuple[str, float]] = {}

    def lock(self, site: str = "?"):
        validate.label("site", site)
        sim = self.sim
        me = sim.current
        if self.mutex.owner is me and self.mutex.recursive:
            yield self.mutex.lock()  # nested: the outer acquisition is the one timed
            return
        st = self.sites.get(site)
        if st is None:
            st = self.sites[site] = SiteStats(site)
        start = sim.now
        yield self.mutex.lock()
        st.acquisitions += 1
        if sim.now > start:
            st.contended += 1
            st.wait_us += sim.now - start
        self._since[me.tid] = (site, sim.now)

    def unlock(self):
        sim = self.sim
        me = sim.current
        if self.mutex.owner is me and self.mutex.depth > 1:
            yield self.mutex.unlock()
            return
        site, since = self._since.pop(me.tid, ("?", sim.now))
        yield self.mutex.unlock()
        if site in self.sites:
            self.sites[site].hold_us += sim.now - since

    def held(self) -> bool:
        """Does the current thread hold it?"""
        return self.mutex.held_by(self.sim.current)

    def wait_us(self) -> float:
        return sum(s.wait_us for s in self.sites.values())

    def profile(self) -> str:
        """Contention by call site, most waited-for first, as a text table."""
        rows = sorted(self.sites.values(), key=lambda s: (-s.wait_us, s.site))
        head = f"{self.name} call site"
        lines = [f"{head:<24} {'taken':>7} {'waited':>7} {'wait us':>9} {'held us':>9}"]
        for s in rows:
            lines.append(
                f"{s.site:<24} {s.acquisitions:>7} {s.contended:>7} "
                f"{s.wait_us:>9.0f} {s.hold_us:>9.0f}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return state_repr(
            self,
            type(self.mutex).__name__,
            self.mutex.state_text(),
            f"ctx {self.ctx.name}" if self.ctx is not None else "",
        )


class BQL(ProfiledLock):
    """The Big QEMU Lock: one non-recursive ``QemuMutex`` that every device emulation needs.

    QEMU's names since 2024: ``bql_lock()``, ``bql_unlock()``, ``bql_locked()`` (before that,
    ``qemu_mutex_lock_iothread()`` and friends). ``yield bql.lock("kvm: mmio exit")`` names the
    call site, so ``profile()`` can say who waited for it and who held it how long.
    """

    def __init__(self, sim: Simulation):
        validate.instance("sim", sim, Simulation, kind="a Simulation")
        super().__init__(QemuMutex(sim, "BQL"))

    def lock(self, site: str = "main loop"):
        """``yield bql.lock(site)`` (QEMU: ``bql_lock``)."""
        return super().lock(site)

    def unlock(self):
        """``yield bql.unlock()`` (QEMU: ``bql_unlock``)."""
        return super().unlock()

    def locked(self) -> bool:
        """``bql_locked()``: does the current thread hold the BQL?"""
        return self.held()

    def __repr__(self) -> str:
        return state_repr(self, type(self.mutex).__name__, self.mutex.state_text(), name="")


class RetakeAt:
    """Lets ``aio_poll(..., drop=...)`` release a profiled lock around its sleep and take it
    again under a named call site (so the profile does not file the retake under "?")."""

    def __init__(self, lock: ProfiledLock, site: str):
        validate.instance(
            "lock", lock, ProfiledLock, kind="a ProfiledLock (the BQL, a context lock)"
        )
        validate.label("site", site)
        self.lock_, self.site = lock, site

    def unlock(self):
        return self.lock_.unlock()

    def lock(self):
        return self.lock_.lock(self.site)

    def __repr__(self) -> str:
        return state_repr(self, f"retake at {self.site!r}", name=self.lock_.name)
