"""Household presence in a fleet: a person is home if any device of the household saw them lately.

Each device publishes its own view of every person (retained, {prefix}/<device>/presence/<key>:
present or not, camera, last_seen, score) and reads the others'. The household state
({prefix}/presence/<key>/state, what Home Assistant shows) is the OR of the views: a device
starting up, which has seen nobody yet, does not turn off someone another device sees.

A view counts while its device is online; once the device is offline (its retained status or Last
Will), its "present" counts for one more timeout from when we learnt it, then lapses (it can no
longer say the person left). Pure and clock-driven (monotonic `now` passed in), like Presence.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class View:
    present: bool
    attributes: dict  # person, camera, last_seen (ISO, shown to people), score
    heard_at: float  # monotonic


class Household:
    def __init__(self, timeout: float, unknown_timeout: float):
        self.timeout, self.unknown_timeout = timeout, unknown_timeout
        self._own: dict[str | None, View] = {}
        self._others: dict[str, dict[str | None, View]] = {}  # device -> person -> view
        self._offline_since: dict[str, float] = {}

    def own(self, name: str | None, present: bool, attributes: dict, now: float) -> None:
        self._own[name] = View(present, attributes, now)

    def forget(self, name: str) -> None:
        """The person left the gallery."""
        self._own.pop(name, None)
        for views in self._others.values():
            views.pop(name, None)

    def heard(self, device: str, name: str | None, view: dict | None, now: float) -> None:
        """Another device's view (None: it removed the person)."""
        views = self._others.setdefault(device, {})
        if view is None:
            views.pop(name, None)
            return
        attributes = {k: view.get(k) for k in ("person", "camera", "last_seen", "score")}
        views[name] = View(bool(view.get("present")), attributes, now)

    def device_status(self, device: str, online: bool, now: float) -> None:
        if online:
            self._offline_since.pop(device, None)
        else:
            self._offline_since.setdefault(device, now)

    def state(self, name: str | None, now: float) -> tuple[bool, dict | None]:
        """(home, the attributes of the view that says so, else of our own view)."""
        timeout = self.unknown_timeout if name is None else self.timeout
        mine = self._own.get(name)
        if mine is not None and mine.present:
            return True, mine.attributes
        for device, views in sorted(self._others.items()):
            view = views.get(name)
            if view is None or not view.present:
                continue
            since = self._offline_since.get(device)
            if since is None or now - max(since, view.heard_at) < timeout:
                return True, view.attributes
        return False, mine.attributes if mine is not None else None
