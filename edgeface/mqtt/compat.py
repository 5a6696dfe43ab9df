"""Payloads shaped like other projects' face messages, so automations written for them keep working.

Pure functions of one identity event; edgeface.mqtt.publish sends them when home.frigate /
home.double_take are switched on.

Frigate (0.16+, face recognition), on ``{prefix}/tracked_object_update``::

    {"type": "face", "id": "<epoch>-<camera>-<track id>", "name": "<name>" or null, "score": 0.0-1.0,
     "camera": "<camera>", "timestamp": <epoch seconds>}

Double Take (jakowenko/double-take, api/src/util/mqtt.util.js ``recognize``), on
``double-take/matches/<key>`` for a match (the person's name key, edgeface.mqtt.topics.name_key:
Double Take's own lower-cased name made "Alice" and "alice" share a topic) and
``double-take/matches/unknown`` for a stranger::

    {"id", "duration", "timestamp", "attempts", "camera", "zones",
     "match": {"name", "confidence", "match", "box": {"top", "left", "width", "height"},
               "type", "duration", "detector", "filename"}}

Unknown faces carry ``"unknown": {...}`` and ``"unknowns": [{...}]`` instead of ``"match"``, as
Double Take does. Double Take lower-cases names (its detectors do ``subject.toLowerCase()``),
gives confidence in percent with two decimals and timestamps as ISO 8601 in local time.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class Event(Protocol):
    """What these builders read of an edgeface.recognition.track.IdentityEvent."""

    name: str | None
    score: float
    box: tuple[int, int, int, int]
    track_id: int
    t: float


DETECTOR = "edgeface"
# Double Take's `type` says where the image came from: "latest" is its camera's live snapshot,
# which is what every edgeface frame is.
DOUBLE_TAKE_TYPE = "latest"


def event_id(camera: str, event: Event) -> str:
    """Unique per event, in Frigate's "<epoch>-<suffix>" form: track ids count from 1 per camera
    and start over when the daemon or its cameras restart, and automations that drop repeats by
    id (a common Frigate recipe) must not drop tomorrow's "door-3" as a repeat of today's."""
    return f"{float(event.t):.3f}-{camera}-{int(event.track_id)}"


def unit_score(score: float) -> float:
    """A cosine similarity (-1..1) as the 0..1 score Frigate reports."""
    return round(min(1.0, max(0.0, float(score))), 4)


def frigate_face_update(event: Event, camera: str) -> dict[str, Any]:
    return {
        "type": "face",
        "id": event_id(camera, event),
        "name": event.name,
        "score": unit_score(event.score),
        "camera": camera,
        "timestamp": round(float(event.t), 3),
    }


def _local_iso(t: float) -> str:
    # luxon's DateTime.now().toString() in Double Take: ISO 8601 with milliseconds and the local offset
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="milliseconds")


def double_take_payload(event: Event, camera: str, duration: float) -> dict[str, Any]:
    """``duration``: seconds from frame capture to this result (Double Take: processing time)."""
    x, y, w, h = (int(v) for v in event.box)
    seconds = round(max(0.0, float(duration)), 2)
    result = {
        "name": event.name.lower() if event.name is not None else "unknown",
        "confidence": round(100.0 * unit_score(event.score), 2),
        "match": event.name is not None,
        "box": {"top": y, "left": x, "width": w, "height": h},
        "type": DOUBLE_TAKE_TYPE,
        "duration": seconds,
        "detector": DETECTOR,
        "filename": None,  # Double Take names its stored crop here; edgeface stores none
    }
    base: dict[str, Any] = {
        "id": event_id(camera, event),
        "duration": seconds,
        "timestamp": _local_iso(float(event.t)),
        "attempts": 1,
        "camera": camera.lower(),
        "zones": [],
    }
    if event.name is None:
        return {**base, "unknown": result, "unknowns": [result]}
    return {**base, "match": result}
