"""Who is home: per-person presence from sightings at any camera, as a pure clock-driven state machine.

Fed sightings ``seen(name, camera, score, now, wall)`` (name None: a face that matches nobody) and
asked ``expire(now)``; every call returns the `PresenceUpdate`s to publish. No I/O and no clock of
its own: the caller passes the time, so tests can drive hours in microseconds. ``now`` is a
monotonic clock (the daemon: the frames' time.monotonic()) and decides every timeout; ``wall`` is
the wall clock, only shown to people ("last seen"), so NTP stepping the clock a year forward or
an hour back (a Pi without a real-time clock) neither expires anyone nor keeps a ghost present.

A person is present from their first sighting until ``timeout`` seconds after their last one; the
"unknown visitor" pseudo-person (name None) the same, with its own shorter ``unknown_timeout``.
While someone stays in view, sightings arrive every frame: an update goes out only when the state
or camera changes, or when the last one is ``refresh`` seconds old (so "last seen" keeps moving in
Home Assistant without a retained message per frame).

Thread-safe: camera workers call ``seen``, the main loop calls ``expire`` and ``set_people``.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

UNKNOWN = None  # the name under which faces that match nobody are tracked


@dataclass(frozen=True)
class PresenceUpdate:
    name: str | None  # None: the unknown-visitor entity
    present: bool
    camera: str | None  # last camera seen at (None: never seen since start)
    score: float | None
    last_seen: float | None  # wall-clock seconds of the last sighting (for display only)
    removed: bool = False  # the person left the gallery: take their entity away


@dataclass
class _State:
    present: bool = False
    camera: str | None = None
    score: float | None = None
    last_seen: float | None = None  # wall clock, for display
    seen_at: float | None = None  # monotonic: what timeouts count from
    published_at: float | None = None  # monotonic sighting time of the last update sent


class Presence:
    def __init__(self, timeout: float, unknown_timeout: float, refresh: float | None = None):
        self._lock = threading.Lock()
        self._people: dict[str, _State] = {}
        self._unknown = _State()
        self.configure(timeout, unknown_timeout, refresh)

    def configure(self, timeout: float, unknown_timeout: float, refresh: float | None = None) -> None:
        for what, value in (("timeout", timeout), ("unknown_timeout", unknown_timeout)):
            if not value > 0:
                raise ValueError(f"presence {what} must be above 0, got {value}")
        self.timeout, self.unknown_timeout = float(timeout), float(unknown_timeout)
        # attributes refreshed at most this often while someone stays in view (a minute, or less
        # for short timeouts, so "last seen" never lags behind the timeout itself)
        self.refresh = float(refresh) if refresh is not None else min(60.0, self.timeout / 4)

    @property
    def people(self) -> list[str]:
        with self._lock:
            return sorted(self._people)

    def set_people(self, names: list[str] | set[str]) -> list[PresenceUpdate]:
        """The gallery's people now: newcomers start away, the removed get a ``removed`` update."""
        wanted = set(names)
        with self._lock:
            out = []
            for name in sorted(set(self._people) - wanted):
                s = self._people.pop(name)
                out.append(PresenceUpdate(name, False, s.camera, s.score, s.last_seen, removed=True))
            for n in sorted(wanted - set(self._people)):
                self._people[n] = _State()
                out.append(PresenceUpdate(n, False, None, None, None))
        return out

    def seen(self, name: str | None, camera: str, score: float, now: float,
             wall: float | None = None) -> list[PresenceUpdate]:
        """A face at ``camera`` at monotonic time ``now`` (``wall``: the same moment on the wall
        clock, for "last seen"; default ``now``): ``name`` None for a stranger. A name not (or no
        longer) in the gallery is ignored (its event raced a removal)."""
        with self._lock:
            state = self._unknown if name is None else self._people.get(name)
            if state is None:
                return []
            if state.seen_at is not None and now < state.seen_at:
                return []  # another camera's older frame: keep the newest sighting
            changed = not state.present or camera != state.camera
            state.present, state.camera, state.score = True, camera, float(score)
            state.seen_at, state.last_seen = now, now if wall is None else wall
            if not changed and state.published_at is not None and now - state.published_at < self.refresh:
                return []
            state.published_at = now
            return [self._update(name, state)]

    def expire(self, now: float) -> list[PresenceUpdate]:
        """Everyone whose last sighting is older than their timeout (monotonic ``now``) goes away."""
        out = []
        with self._lock:
            for name, state, timeout in self._all():
                if state.present and state.seen_at is not None and now - state.seen_at >= timeout:
                    state.present = False
                    out.append(self._update(name, state))
        return out

    def states(self) -> list[PresenceUpdate]:
        """Every entity's current state (the unknown visitor last): what a fresh broker connection needs."""
        with self._lock:
            return [self._update(name, state) for name, state, _ in self._all()]

    def _all(self) -> Iterator[tuple[str | None, _State, float]]:
        yield from ((n, s, self.timeout) for n, s in sorted(self._people.items()))
        yield UNKNOWN, self._unknown, self.unknown_timeout

    @staticmethod
    def _update(name: str | None, s: _State) -> PresenceUpdate:
        return PresenceUpdate(name, s.present, s.camera, s.score, s.last_seen)
