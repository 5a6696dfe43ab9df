"""The detection schedule for video: which cascade passes each frame gets, within a budget.

Detection is a queue of jobs, each one cascade pass (where, at what roll, which cascade), in
priority order:
  1. "track": every tracked face's region search. Always runs, every frame, outside the queue.
  2. "new": every pass over a moving area where no face was (someone may have come in), and the
     whole-frame sweep at start-up or after a scene change.
  3. "near": a moving area with a face found on the last frame gets its share of a rolling sweep
     (each pass once every motion.sweep_period frames): a newcomer beside someone known. The part
     of the area left or right of its faces, when wide enough to hold another face, gets every pass,
     ranked with these.
  4. "searched": a moving area that already got every pass and held no face (a waving arm, a
     tree, a TV) gets the same rolling share while it keeps moving in the same place.
  5. "sweep": the slow whole-frame sweep (motion.idle_sweep_s) for faces that never moved; without
     the motion stage, the rolling whole-frame sweep while faces are tracked.
The frame's passes run until detection.budget_ms is spent (at least one a frame, so the queue always
moves); what is left carries over to the next frames. A waiting job rises one class every
AGE_FRAMES frames and, within a class, the oldest goes first, so none starves.

Jobs over a moving area refer to the area, not to a box: while the area keeps moving, its remaining
passes search where it is now.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from edgeface.config import DetectionConfig, MotionConfig
from edgeface.vision.detect import FRONTAL, Box, Detection, Scan

KINDS = ("track", "new", "near", "searched", "sweep")  # priority order
# A job waiting this many frames rises one priority class (1 s at 15 fps): a busy scene delays the
# whole-frame sweep, it never stops it.
AGE_FRAMES = 15
# The upright frontal pass comes this many times in each period of a rolling sweep: most faces are
# upright, and one may only become findable after its area was searched (the real walking clip's two
# 33 px faces, in its last 4 frames: 3 of 4 each found, 0 with the pass once a period; make_clip
# clips, where tracked faces move all the time, ~8% fewer frames/s).
UPRIGHT_VISITS = 3
# The part of a moving area beside the faces found in it counts as a moving area of its own when it is
# at least this many of their size wide: room for another face and the cascade's margin around it.
BESIDE_FACES = 1.5


@dataclass(eq=False)
class Area:
    """A moving area getting every pass: where it is now, passes still queued, whether any found a face."""
    box: Box | None  # None: the whole frame
    pending: int = 0
    found: bool = False


@dataclass(eq=False)
class Job:
    kind: str
    scan: Scan
    born: int  # frame index it was queued on
    area: Area | None = None

    def now(self) -> Scan:
        """The pass as it runs now: over where its area is on this frame."""
        return replace(self.scan, box=self.area.box) if self.area is not None else self.scan

    def rank(self, frame: int) -> int:
        return KINDS.index(self.kind) - (frame - self.born) // AGE_FRAMES


@dataclass
class FramePlan:
    """One frame's detection: the tracked faces' region search (always), then ``jobs`` in order
    until ``budget_ms`` is spent (0: all of them)."""
    tracked: list[Detection]
    jobs: list[Job]
    budget_ms: float
    full_sweep: bool = False  # a whole-frame full search began on this frame
    # run every job whatever the budget: the whole-frame search at start-up and after a scene change
    in_full: bool = False

    @property
    def empty(self) -> bool:
        return not self.tracked and not self.jobs


@dataclass
class ScheduleStats:
    frames: int = 0
    budget_out: int = 0  # frames on which the budget ran out before the queue did
    carried: int = 0  # jobs left for a later frame, summed over frames
    jobs: Counter = field(default_factory=Counter)  # passes run, by kind ("track": region searches)

    def as_dict(self) -> dict:
        total = sum(self.jobs.values()) or 1
        return {"budget_out_frames": self.budget_out, "jobs_carried": self.carried,
                "jobs_run": sum(self.jobs.values()),
                "job_share": {k: round(self.jobs[k] / total, 4) for k in KINDS if self.jobs[k]}}


class DetectionSchedule:
    """Plans each frame's detection (see the module docstring). ``sweep(box)`` lists every pass of
    a full search of a box (HaarDetector.sweep)."""

    def __init__(self, sweep: Callable[[Box | None], list[Scan]], detection: DetectionConfig,
                 motion: MotionConfig | None = None):
        self.sweep, self.detection, self.motion = sweep, detection, motion
        self.queue: list[Job] = []
        self.areas: list[Area] = []  # moving areas with passes queued
        self.searched: list[tuple[Box, float]] = []  # searched, held no face: (box, remembered until t)
        self.empty_since: list[tuple[Box, float]] = []  # searched empty, not yet long enough: (box, since t)
        self.moving: list[tuple[Box, float]] = []  # where something moved lately: (box, last moved at t)
        self.stats = ScheduleStats()
        self.full_sweeps = 0
        self._idle_k = 0  # the next pass of the slow whole-frame sweep
        self._idle_due: float | None = None

    # -- planning ---------------------------------------------------------------------------
    def plan(self, frame: int, t: float, tracked: Sequence[Detection], found: Sequence[Detection],
             areas: Sequence[Box] | None, restart: bool = False) -> FramePlan:
        """This frame's plan. ``tracked``: every tracked face; ``found``: those found on the last
        frame; ``areas``: the motion stage's moving areas (None: no motion stage, the whole frame
        counts as moving); ``restart``: start-up or a scene change: the whole frame is searched
        afresh, in full on this frame, over the budget. (A cut drops every track: spread over the
        next frames with a 20 ms budget, it left everyone in view unnamed for 3-10 frames after each
        cut of make_clip clips, 0.92 named against 0.98 in full; at start-up it lost the first
        frames of make_clip seeds 11 and 3, 0.956 and 0.974 named against 0.98.)"""
        self.frame = frame
        full = False
        if restart:
            self.queue.clear()
            self.areas.clear()
            self.searched.clear()
            self.empty_since.clear()
            self.moving.clear()
            full = self._whole_frame()
        elif areas is None:  # no motion stage: a full search while nothing is tracked, else rolling
            if not tracked:
                full = self._whole_frame()
            else:
                self._rolling(None, "sweep", self.detection.sweep_period)
        else:
            # (Searching a lost tracked face's place with every pass found the woman of the female-and-
            # male footage in 44 of 56 frames instead of 25, but with the budget its passes carried over
            # and found false faces where someone had just left, which took up their track and name:
            # door clips, 25-39 wrong-name frames. Not done.)
            for box in areas:
                self._moving(box, found)
            self._settled(areas, tracked, t)
            self._idle(t)
        order = sorted(self.queue, key=lambda j: (j.rank(frame), j.born))
        return FramePlan(list(tracked), order, self.detection.budget_ms, full, in_full=full and restart)

    def _whole_frame(self) -> bool:
        """Queue every pass over the whole frame, unless a whole-frame search is still queued."""
        if any(a.box is None for a in self.areas):
            return False
        self._add_area(None)
        self.full_sweeps += 1
        return True

    def _add_area(self, box: Box | None, kind: str = "new") -> None:
        area = Area(box)
        for scan in self.sweep(box):
            self.queue.append(Job(kind, scan, self.frame, area))
            area.pending += 1
        self.areas.append(area)

    def _moving(self, box: Box, found: Sequence[Detection]) -> None:
        period = self.motion.sweep_period if self.motion is not None else self.detection.sweep_period
        near = [d for d in found if _near(d, box)]
        if near:
            self._rolling(box, "near", period)
            # Beside the faces it holds, the area may hold someone else: that part is a moving area
            # in its own right. (Real walking-and-pause: the whole frame moved while three people
            # walked in; once one was tracked, the blonde woman beside him got only the rolling share.)
            # Its passes rank with the rolling ones ("near"), not before them: those find the tracked
            # faces again when their region search loses them (door_clip seed 6: ranked "new", they
            # kept Elton John unnamed for 1 s beside Madonna).
            for side in _beside(box, near):
                self._moving_alone(side, period, "near")
            return
        self._moving_alone(box, period)

    def _moving_alone(self, box: Box, period: int, kind: str = "new") -> None:
        """A moving area with no face found in it: its passes (of priority ``kind``), where it is now."""
        queued = [a for a in self.areas if a.box is not None and _overlap(a.box, box)]
        if queued:  # still being searched: its remaining passes follow it
            for a in queued:
                a.box = box
            return
        if any(_same_place(box, old, self._growth()) for old, _ in self.searched):
            self._rolling(box, "searched", period)
            return
        self._add_area(box, kind)

    def _settled(self, areas: Sequence[Box], tracked: Sequence[Detection], t: float) -> None:
        """Where something stopped moving motion.settle_s ago, with no tracked face in it: one more
        upright pass there. Someone walking in, blurred, turned or small while they moved, is most
        often findable once they stand still, and then the motion stage stops showing them."""
        assert self.motion is not None
        settle = self.motion.settle_s
        if settle <= 0:
            return
        still = []
        for box, last in self.moving:
            if any(_overlap(box, a) for a in areas):
                continue  # still moving: the area takes its place below
            if t - last < settle:
                still.append((box, last))
            elif not any(_inside(d, box) for d in tracked):
                self.queue.append(Job("new", self.sweep(box)[0], self.frame))
        self.moving = still + [(a, t) for a in areas]

    def _growth(self) -> float:
        return self.motion.searched_growth if self.motion is not None else 1.5

    def _rolling(self, box: Box | None, kind: str, period: int) -> None:
        """This frame's share of a rolling sweep over ``box``: each pass once every ``period``
        frames, the upright frontal pass UPRIGHT_VISITS times. A pass of the same kind still queued
        is moved to ``box`` rather than queued twice."""
        scans = self.sweep(box)
        period = max(1, period)
        slot = self.frame % period
        for k, scan in enumerate(scans):
            first = k * period // len(scans)
            visits = UPRIGHT_VISITS if (scan.angle, scan.cascade) == (0.0, FRONTAL) else 1
            if all((first + v * period // visits) % period != slot for v in range(visits)):
                continue
            self._queue_once(kind, scan)

    def _queue_once(self, kind: str, scan: Scan) -> None:
        for job in self.queue:
            same_pass = (job.scan.angle, job.scan.cascade) == (scan.angle, scan.cascade)
            # the same pass over the same area, moved (two areas apart, two people, each get theirs)
            same_area = job.scan.box is None or scan.box is None or _overlap(job.scan.box, scan.box)
            if job.kind == kind and job.area is None and same_pass and same_area:
                job.scan = scan
                return
        self.queue.append(Job(kind, scan, self.frame))

    def _idle(self, t: float) -> None:
        """The slow whole-frame sweep: the next frontal pass once every idle_sweep_s / passes seconds; after
        a gap (a stalled camera) it goes on from now rather than catching up in a burst."""
        assert self.motion is not None
        # frontal passes only: a whole-frame profile pass costs ~2.5 frontal ones, and this sweep is
        # most of what an empty room costs (a turned head that moves is searched with every pass)
        scans = [s for s in self.sweep(None) if s.cascade == FRONTAL]
        step = self.motion.idle_sweep_s / max(1, len(scans))
        if step <= 0 or not scans:
            return
        if self._idle_due is None or t - self._idle_due > step:
            self._idle_due = t
        if t < self._idle_due:
            return
        self._idle_due += step
        self._idle_k += 1
        self._queue_once("sweep", scans[(self._idle_k - 1) % len(scans)])

    # -- after the frame ------------------------------------------------------------------
    def finish(self, plan: FramePlan, ran: int, faces: Sequence[Detection], t: float) -> None:
        """``ran``: how many of plan.jobs ran (the rest carry over); ``faces``: what was found."""
        done, left = plan.jobs[:ran], plan.jobs[ran:]
        st = self.stats
        st.frames += 1
        st.jobs["track"] += len(plan.tracked)
        st.jobs.update(j.kind for j in done)
        st.carried += len(left)
        st.budget_out += bool(left)
        gone = {id(j) for j in done}
        self.queue = [j for j in self.queue if id(j) not in gone]
        for job in done:
            if job.area is not None:
                job.area.pending -= 1
        for area in self.areas:
            if any(_inside(d, area.box) for d in faces):
                area.found = True
        memory = self.motion.searched_memory_s if self.motion is not None else 0.0
        confirm = self.motion.searched_confirm_s if self.motion is not None else 0.0
        growth = self._growth()
        self.searched = [(b, until) for b, until in self.searched
                         if until > t and not any(_inside(d, b) for d in faces)]
        # an area searched empty is remembered once it stayed empty, in the same place, for `confirm` s
        self.empty_since = [(b, since) for b, since in self.empty_since
                            if t - since <= confirm + memory and not any(_inside(d, b) for d in faces)]
        for area in self.areas:
            if area.pending > 0 or area.found or area.box is None or memory <= 0:
                continue
            earlier = [since for b, since in self.empty_since if _same_place(area.box, b, growth)]
            if confirm <= 0 or (earlier and t - min(earlier) >= confirm):
                self.searched.append((area.box, t + memory))
            elif not earlier:
                self.empty_since.append((area.box, t))
        self.areas = [a for a in self.areas if a.pending > 0]


def _inside(det: Detection, box: Box | None) -> bool:
    if box is None:
        return True
    x, y, w, h = box
    return x <= det.cx < x + w and y <= det.cy < y + h


def _near(det: Detection, box: Box) -> bool:
    """``box`` reaches within 1.5 face sizes of the face's centre (it moves with that person:
    their head, or the edge of their body or picture)."""
    x, y, w, h = box
    r = 1.5 * det.size
    return x - r <= det.cx < x + w + r and y - r <= det.cy < y + h + r


def _beside(box: Box, faces: Sequence[Detection]) -> list[Box]:
    """The parts of ``box`` left and right of ``faces`` (from their boxes' edges) wide enough to hold
    another face beside them (BESIDE_FACES of the largest face's size)."""
    x, y, w, h = box
    size = max(d.size for d in faces)
    left = int(min(d.cx - d.size / 2 for d in faces))
    right = int(math.ceil(max(d.cx + d.size / 2 for d in faces)))
    out = []
    if left - x >= BESIDE_FACES * size:
        out.append((x, y, left - x, h))
    if x + w - right >= BESIDE_FACES * size:
        out.append((right, y, x + w - right, h))
    return out


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _same_place(box: Box, old: Box, growth: float) -> bool:
    """``box`` is the remembered area ``old`` still moving in place: its centre inside ``old`` and
    its area within ``growth`` times ``old``'s either way (it did not move away, grow or shrink
    substantially). A much smaller area inside a big remembered one is something new: on a door
    clip the whole frame moved (light) just before someone came in, was searched empty, and the
    newcomer's area inside it then got only the rolling share and was never found."""
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    ox, oy, ow, oh = old
    return ox <= cx < ox + ow and oy <= cy < oy + oh and ow * oh <= growth * w * h <= growth * growth * ow * oh
