"""Face tracking: follow faces across frames and decide when an identity is worth announcing.

Pure logic, no I/O. Per frame the pipeline calls

    tracks = tracker.update(detections, t)          # one Track per face, in detection order
    for track in tracks:
        if track.needs_embedding(t):                # new or undecided tracks: every frame;
            tracker.observe(track, name, score, t)  # decided ones: every reembed_interval s
    events = tracker.events(t)

A track's identity is voted over its first `vote_count` embeddings (decided as soon as one
name holds a majority of them), so a single bad chip at a steep angle cannot name someone.
One event is emitted when the vote is decided, another only if
later embeddings settle on a different name, and a new one when a face that left (unseen for
longer than `max_missed` seconds and `min_missed_frames` frames) comes back as a new track.

Times are seconds on a clock that never jumps: time.monotonic() (the daemon) or the video's own
time (bench). On a wall clock stepped back an hour a track would outlive its face by that hour.
"""
from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from edgeface.config import TrackingConfig
from edgeface.vision.detect import Detection


@dataclass
class IdentityEvent:
    name: str | None  # None: a face that matches nobody in the gallery
    score: float  # cosine similarity of the decided name (best match for unknowns)
    box: tuple[int, int, int, int]  # x, y, w, h in frame pixels
    angle: float  # roll in degrees
    track_id: int
    t: float  # frame time, seconds, on the clock the tracker runs on (the daemon stamps wall-clock time)
    # an unknown face: the mean of its track's unknown embeddings (for grouping into visitors)
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)
    visitor_id: str | None = None  # the returning stranger it was grouped with (store.visitors)
    visits: int = 0  # that visitor's appearances so far, this one included
    new_visit: bool = True  # False: another track of a visit already announced (no new unknown_visitor event)


@dataclass(eq=False)
class Track:
    id: int
    detection: Detection  # the face's latest detection
    first_seen: float
    last_seen: float
    cfg: TrackingConfig = field(repr=False)
    name: str | None = None  # decided identity (None while undecided or unknown)
    score: float = 0.0
    decided: bool = False
    announced: bool = False  # an event went out for this track (with name `announced_name`)
    announced_name: str | None = None
    last_embedded: float | None = None
    missed: int = 0  # processed frames in a row without this face
    # Found again after missed frames: what was found may be something else where the face was
    # (a person who just left the doorway), so its name is withheld until an embedding confirms it.
    recheck: bool = False
    # One of its chips that matched nobody passed the face check (unknown_face_check). A named
    # track needs it too before it turns unknown: it may have slid off the face onto the wall.
    face_confirmed: bool = False
    votes: list[tuple[str | None, float]] = field(default_factory=list, repr=False)  # the first embeddings
    unknown_sum: np.ndarray | None = field(default=None, repr=False)  # sum of its embeddings that matched nobody
    recent: deque[tuple[str | None, float]] = field(default_factory=deque, repr=False)  # after the decision
    was_unknown: bool = False  # decided unknown once: renamed only by clear matches (rename_margin)

    @property
    def shown_name(self) -> str | None:
        """The name to show for this frame (None while undecided, unknown or being rechecked)."""
        return None if self.recheck else self.name

    @property
    def steady(self) -> bool:
        """A face it is sure of: decided, named, and not being rechecked; vision.follow follows only
        such tracks. A box found where a track's face was after a gap may be something else (door_clip
        seed 2: wood grain beside a cup, found as the track of a man who had just left, was followed
        with his name for 2 s); a face that matched nobody may be no face (the same wood grain,
        followed between the cascade's hits, lived on until one of its chips was named elton_john)."""
        return self.decided and not self.recheck and self.name is not None

    def needs_embedding(self, t: float) -> bool:
        if self.recheck or not self.decided or self.last_embedded is None:
            return True
        interval = self.cfg.reembed_interval if self.name is not None else self.cfg.unknown_reembed_interval
        return t - self.last_embedded >= interval

    def box(self) -> tuple[int, int, int, int]:
        return self.detection.box()


def _vote(observations) -> tuple[str | None, float]:
    """Most frequent name; ties go to the higher mean score. Returns (name, mean score)."""
    counts = Counter(name for name, _ in observations)
    mean = {n: sum(s for m, s in observations if m == n) / c for n, c in counts.items()}
    name = max(counts, key=lambda n: (counts[n], mean[n]))
    return name, mean[name]


def _overlap(a: Detection, b: Detection) -> tuple[float, float]:
    """IoU of the two faces' squares and their centre distance in face sizes."""
    ha, hb = a.size / 2, b.size / 2
    w = min(a.cx + ha, b.cx + hb) - max(a.cx - ha, b.cx - hb)
    h = min(a.cy + ha, b.cy + hb) - max(a.cy - ha, b.cy - hb)
    inter = max(0.0, w) * max(0.0, h)
    union = a.size ** 2 + b.size ** 2 - inter
    iou = inter / union if union > 0 else 0.0
    dist = math.hypot(a.cx - b.cx, a.cy - b.cy) / max(a.size, b.size, 1e-6)
    return iou, dist


def continues(a: Detection, b: Detection, cfg: TrackingConfig) -> bool:
    """Whether ``b`` lies where ``a`` is, close enough to be that face: the rule by which a
    detection continues a track (box overlap, or centres close in face sizes)."""
    iou, dist = _overlap(a, b)
    return iou >= cfg.iou_min or dist <= cfg.centre_max


class Tracker:
    def __init__(self, cfg: TrackingConfig | None = None):
        self.cfg = cfg or TrackingConfig()
        self.tracks: list[Track] = []
        self._next_id = 1
        self._pending: list[IdentityEvent] = []

    def update(self, detections: list[Detection], t: float) -> list[Track]:
        """Match this frame's detections to live tracks; returns one Track per face, in detection
        order. A detection that continues no track but lies where another detection of this frame
        is (``continues``) is the same face framed twice (a box on the forehead and eyes beside
        the whole face's, a larger box around it): it starts no track, and that face's track
        keeps the larger of the two boxes."""
        # (a long stall with no frames at all, e.g. a camera reconnecting, also ends every track)
        self.tracks = [tr for tr in self.tracks if t - tr.last_seen <= self.cfg.max_missed
                       or (tr.missed < self.cfg.min_missed_frames and t - tr.last_seen <= 10 * self.cfg.max_missed)]
        pairs = []
        for ti, tr in enumerate(self.tracks):
            for di, det in enumerate(detections):
                iou, dist = _overlap(tr.detection, det)
                if iou >= self.cfg.iou_min or dist <= self.cfg.centre_max:
                    pairs.append((iou - dist, ti, di))
        pairs.sort(reverse=True)  # greedy: best overlap first; faces rarely cross on a doorway camera
        result: list[Track | None] = [None] * len(detections)
        used = set()
        for _, ti, di in pairs:
            if ti in used or result[di] is not None:
                continue
            used.add(ti)
            tr = self.tracks[ti]
            tr.recheck = tr.recheck or (tr.missed > 0 and tr.name is not None)
            tr.detection, tr.last_seen, tr.missed = detections[di], t, 0
            result[di] = tr
        for ti, tr in enumerate(self.tracks):
            if ti not in used:
                tr.missed += 1
        placed = [tr for tr in result if tr is not None]  # the tracks this frame's faces are in so far
        tracks: list[Track] = []
        for det, matched in zip(detections, result):
            if matched is None and det.followed:
                continue  # a followed face belongs to the track it was followed for, or to none
            if matched is None:  # a face no live track continues: a new track, unless it is one already
                same = next((tr for tr in placed if continues(tr.detection, det, self.cfg)), None)
                if same is not None:
                    # The same face framed twice: its track follows the larger box, the whole face
                    # (on the door clips the other was a box on the eyes and forehead, whose chips
                    # failed the face check or embedded far from the face's own).
                    if det.size > same.detection.size:
                        same.detection = det
                    continue
                matched = Track(self._next_id, det, t, t, self.cfg)
                self._next_id += 1
                self.tracks.append(matched)
                placed.append(matched)
            tracks.append(matched)
        return tracks

    def new_scene(self) -> None:
        """The picture changed all at once (a cut, the camera moved, the lights): a face in a
        live track may be someone else now, so every track votes again before it shows a name.
        Its announced name is kept, so the same person is not announced twice, and so is having
        been decided unknown: a false face (wood grain, a corner) stays where it was when the lights
        change, and would otherwise be named by the first match creeping over a threshold."""
        for tr in self.tracks:
            tr.name, tr.decided, tr.votes, tr.recheck = None, False, [], False
            tr.recent.clear()

    def observe(self, track: Track, name: str | None, score: float, t: float, clearance: float = 1.0) -> None:
        """Record one embedding's match for a track (name None: nobody in the gallery);
        ``clearance``: by how much the score cleared the name's threshold."""
        track.last_embedded = t
        if track.decided and track.name is None:
            track.was_unknown = True
        if name is not None and track.was_unknown and clearance < self.cfg.rename_margin:
            # A face decided unknown is renamed only by clear matches, in its new vote too: false
            # faces (wood grain, a forehead) that matched nobody at first crept just over a threshold
            # later and were named.
            name = None
        n = self.cfg.vote_count
        if not track.decided:
            track.votes.append((name, float(score)))
            leader, count = Counter(m for m, _ in track.votes).most_common(1)[0]
            # Decide as soon as the outcome is settled: a name holding a majority of vote_count
            # cannot be outvoted, so a slow device need not wait for the remaining embeddings.
            if len(track.votes) >= n or count * 2 > n:
                track.name, track.score = _vote(track.votes)
                track.decided, track.recheck = True, False
                track.was_unknown = track.was_unknown or track.name is None
                if not track.announced or track.name != track.announced_name:
                    self._announce(track, t)
            return
        if track.name is None and track.face_confirmed and (not track.announced or track.announced_name is not None):
            self._announce(track, t)  # an unknown face held back until its face check passed
        if track.recheck and name == track.name:
            track.recheck = False  # the face found again is the same person
        if name is not None and name != track.name:
            # A confident match to someone else: the face in this track may have changed (a cut,
            # one person stepping in front of another). Vote again, embedding every frame, rather
            # than wait for a majority of the slow re-embeddings of a decided track.
            track.decided, track.votes = False, [(name, float(score))]
            track.recent.clear()
            return
        track.recent.append((name, float(score)))
        while len(track.recent) > n:
            track.recent.popleft()
        if len(track.recent) < n:
            if name == track.name:
                track.score = max(track.score, float(score))
            return
        winner, mean = _vote(track.recent)
        # Change only on a clear majority of the latest embeddings, so one odd chip does not flip it.
        if winner != track.name and sum(1 for m, _ in track.recent if m == winner) * 2 > n:
            track.name, track.score = winner, mean
            track.recent.clear()
            self._announce(track, t)
        elif winner == track.name:
            track.score = max(track.score, mean)

    def _announce(self, track: Track, t: float) -> None:
        if track.name is None and (not self.cfg.unknown_events
                                   or (self.cfg.unknown_face_check and not track.face_confirmed)
                                   or track.detection.size < self.cfg.unknown_min_size):
            return  # (held back: announced on a later embedding once it passes)
        det = track.detection
        track.announced, track.announced_name = True, track.name
        embedding = None
        if track.name is None and track.unknown_sum is not None:
            embedding = track.unknown_sum / max(float(np.linalg.norm(track.unknown_sum)), 1e-12)
        self._pending.append(IdentityEvent(track.name, round(track.score, 4), track.box(), float(det.angle),
                                           track.id, t, embedding))

    def events(self, t: float) -> list[IdentityEvent]:
        """Identities decided, changed or re-appeared since the last call."""
        out, self._pending = self._pending, []
        return out
