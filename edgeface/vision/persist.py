"""Video only: a face the verification rule narrowly rejects is kept once it stays put.

The second opinion (detection.verify_min_neighbors, 8) was set on still photos, where a turned
canvas makes the cascade fire on texture. On real footage it also rejects real faces a camera
sees poorly: glasses (no eye found either), blur, flat light. On the shared walking-and-pause clip
the bald man with glasses got 4-7 second-opinion neighbours in most frames and was never kept;
the blonde woman with glasses 4-6 in frames where she was not. A false face on texture rarely
scores like that upright, in the same place, frame after frame; a real face does. So an upright
frontal candidate the rule rejects, but with at least ``min_second`` second-opinion neighbours,
is kept when such a candidate was seen at the same place and size in ``frames - 1`` other frames
of the last ``window``.

Pure logic over candidates; the pipeline keeps one Persistence per camera.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from edgeface.vision.detect import Candidate, Detection

UPRIGHT = 15.0  # degrees of roll within which a candidate counts as upright
SAME_SIZE = 1.3  # size ratio within which two sightings are the same face


def same_place(a: Detection, b: Detection) -> bool:
    """Centres within half a face size, sizes within SAME_SIZE of each other."""
    big, small = max(a.size, b.size), max(min(a.size, b.size), 1e-6)
    return math.hypot(a.cx - b.cx, a.cy - b.cy) <= 0.5 * big and big / small <= SAME_SIZE


class Persistence:
    def __init__(self, frames: int, window: int, min_second: int):
        self.frames, self.window, self.min_second = frames, window, min_second
        self._seen: list[tuple[int, Detection]] = []  # (frame, weak candidate) of the last window frames

    def weak(self, c: Candidate) -> bool:
        """A candidate this rule may keep: upright, frontal, some second opinion."""
        d = c.detection
        return not d.profile and abs(d.angle) <= UPRIGHT and c.second >= self.min_second

    def confirmed(self, frame: int, rejected: Sequence[Candidate]) -> list[Candidate]:
        """Of ``rejected`` (this frame's candidates the verification rule did not keep), those seen
        weakly at the same place on enough recent frames; this frame's weak ones are remembered."""
        if self.frames <= 1:
            return []
        self._seen = [(f, d) for f, d in self._seen if frame - f < self.window]
        weak = [c for c in rejected if self.weak(c)]
        out = [c for c in weak
               if len({f for f, d in self._seen if f != frame and same_place(d, c.detection)}) >= self.frames - 1]
        self._seen += [(frame, c.detection) for c in weak]
        return out

    def reset(self) -> None:
        self._seen.clear()
