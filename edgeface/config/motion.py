"""motion: the gate that decides which frames and areas are searched for faces."""
from __future__ import annotations

import math
from dataclasses import dataclass

from edgeface.config.validate import require


@dataclass
class MotionConfig:
    enabled: bool = True  # false: detection on every frame as without motion gating
    width: int = 160  # the motion mask is computed on a grey copy this many pixels wide
    # Grey levels (0..255) by which a small-copy pixel must differ from the background to count
    # as changed. Sensor noise of sigma 2.5 on the full frame is ~0.7 on the 4x smaller copy.
    threshold: float = 12.0
    # Weight of each new frame in the running-average background (cv2.accumulateWeighted).
    # 0.3 forgets within ~7 frames: the background a person uncovers when they leave stops being
    # "motion" at once (0.05 kept it for ~45 frames, each paying a sweep), exposure drift is
    # followed, and someone who stands still is absorbed (their track keeps them: the region
    # search needs no motion; the idle sweep finds a still face that was never found).
    # door_clip seed 1 (tools/measure_motion.py): empty frames with motion 0.05: 30%, 0.2: 6%, 0.3: 4%.
    learn_rate: float = 0.3
    # Changed areas smaller than this fraction of the frame are noise (a flicker, a compression block).
    min_area: float = 0.001
    # Each changed area is grown by this fraction of its larger side (plus min_margin pixels) on
    # every side before detection: a face's edge may be still while the body moved.
    margin: float = 0.25
    min_margin: int = 24
    # More than this fraction of the frame changed at once is not motion but a global change
    # (lights, night mode, camera moved): the background is re-learnt from this frame.
    global_change: float = 0.5
    # Safety net for faces that never moved (in view when the daemon started, or stopped before
    # being found): a whole-frame sweep, one detection angle at a time (upright first), spread
    # evenly over this many seconds. Each angle costs 60-115 ms of CPU (~0.7 s a cycle), so this is
    # most of what an empty room costs: `edgeface run`, empty 640x480 room at 15 fps, 30 s of CPU:
    # 3.4% of a core without it, 4.7% at 60 s, 12% at 12 s (before idle_stride). 0 disables.
    # With JPEG frames decoded only as far as looked at (edgeface.vision.pixels), the rest is ~1.0%
    # and this sweep (frontal passes only) the bulk: 120 s keeps an empty room under 1.5% of a core.
    idle_sweep_s: float = 120.0
    # A moving area with no tracked face in it gets every angle at once; one holding a tracked
    # face gets each angle once every sweep_period frames (a newcomer beside someone known).
    # 7 (one angle a frame) made make_clip clips, where tracked faces move all the time, 40% slower
    # than 25, which costs about what detection.sweep_period's whole-frame rolling sweep did.
    sweep_period: int = 25
    # Nothing tracked and nothing moving on the last frame looked at: look at only every
    # idle_stride-th frame (motion, scene change, idle sweep), as decoding and motion are then all
    # the work there is. 3 at 15 fps adds at most 133 ms to the time to name (empty room 4.0% of a
    # core against 5.0% at 2). 1 looks at every frame.
    idle_stride: int = 3
    # A moving area that got every pass and held no face (a waving arm, a tree, a TV) is remembered
    # this many seconds: while it keeps moving in the same place it gets only its share of the
    # rolling sweep (each pass once every sweep_period frames), not every pass again each frame.
    # It gets every pass again once it moves, or grows or shrinks by more than searched_growth x its area.
    searched_memory_s: float = 10.0
    searched_growth: float = 1.5
    # ... but only once it has been searched empty, in the same place, for this many seconds (every
    # pass each frame meanwhile): someone walking in is often searched while half through the door
    # and found a few frames later (door_clip seed 4: remembered at once, Elton's area got only the
    # rolling share and he was never named). A tree or a TV pays this once per searched_memory_s.
    searched_confirm_s: float = 1.0
    # Where something stopped moving this many seconds ago (the motion stage no longer shows it),
    # with no tracked face in it, gets one more upright pass: someone who walked in unfound and stood
    # still (the real walking clip's two 33 px faces: found in 3 of their 4 frames each, 0 without). 0 disables.
    settle_s: float = 0.5

    def __post_init__(self):
        finite = math.isfinite
        checks = {  # key: (valid, the allowed range as a sentence)
            "width": (16 <= self.width <= 4096, "16..4096"),
            "threshold": (finite(self.threshold) and 0 < self.threshold < 255, "above 0 and below 255"),
            "learn_rate": (finite(self.learn_rate) and 0 < self.learn_rate <= 1, "above 0, at most 1"),
            "min_area": (finite(self.min_area) and 0 <= self.min_area < 1, "0 or more, below 1"),
            "margin": (finite(self.margin) and 0 <= self.margin <= 4, "0..4"),
            "min_margin": (0 <= self.min_margin <= 4096, "0..4096"),
            "global_change": (finite(self.global_change) and 0 < self.global_change <= 1, "above 0, at most 1"),
            "sweep_period": (1 <= self.sweep_period <= 1000, "1..1000"),
            "idle_stride": (1 <= self.idle_stride <= 100, "1..100"),
            "idle_sweep_s": (finite(self.idle_sweep_s) and 0 <= self.idle_sweep_s <= 3600, "0..3600"),
            "searched_memory_s": (finite(self.searched_memory_s) and 0 <= self.searched_memory_s <= 3600, "0..3600"),
            "searched_growth": (finite(self.searched_growth) and 1 <= self.searched_growth <= 100, "1..100"),
            "settle_s": (finite(self.settle_s) and 0 <= self.settle_s <= 60, "0..60"),
            "searched_confirm_s": (finite(self.searched_confirm_s) and 0 <= self.searched_confirm_s <= 3600,
                                   "0..3600"),
        }
        require(*((ok, f"{k} must be {allowed}, not {getattr(self, k)!r}") for k, (ok, allowed) in checks.items()))
