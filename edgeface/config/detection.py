"""detection: the Haar cascades, the roll sweep and the tracked-face search."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import cv2

from edgeface.config.paths import shipped_file
from edgeface.config.validate import require, within

HAARCASCADES: str = cv2.data.haarcascades  # type: ignore[attr-defined]  # cv2's type stubs leave out cv2.data


# Per-frame budget for queued cascade passes (README, "Detection budget"). A Raspberry Pi 4 is 3-4x
# slower than one core of the 2-core x86 machine measured here, so 10 frames/s there is ~28 ms a frame
# here; a tracked face takes ~4 ms of region search, ~3 ms of chips and embeddings on average, decode and
# motion 1-2 ms: 20 ms is left. A pass over a 160x160 moving area costs 1-7 ms, so a new area gets every
# pass within 2-4 frames; a whole-frame pass (30-75 ms) overruns it, on one frame every few seconds.
BUDGET_MS = 20.0
# Summed neighbours a face found only by the profile cascade needs: the skimage cameraman scores 28-35;
# whole-frame profile passes on the door clips' rooms (coffee, rocket, chelsea) gave no hit, and the one
# false one on the astronaut picture (her shoulder) scored 5.
PROFILE_MIN_SCORE = 15.0


@dataclass
class DetectionConfig:
    # Roll angles (degrees) at which the frame is turned and scanned; a face at roll r is
    # found when some grid angle a has |r + a| within the cascade's ~15 degree tolerance.
    angles: list[float] = field(default_factory=lambda: [-60.0, -40.0, -20.0, 0.0, 20.0, 40.0, 60.0])
    scale_factor: float = 1.1
    min_neighbors: int = 3  # 3 vs 4: worst rotated five-celebs angle 0.92 both, mean 0.947 vs 0.938
    # Smallest face side, original-frame pixels. Below the detection resolution's 24 px window it changes
    # nothing (a 640x480 frame is searched at 480x360: 24 px there are 32 here). 27, not 30: the
    # cascade's neighbours of a face come from the window sizes around its own, so a face whose box is
    # barely above min_size has few (the real walking clip's 24 px faces, 33 px boxes on a 480x270 clip:
    # 3 and 3 of their 4 labelled frames at 30, sometimes 0; 4 and 4 at 27). A full sweep of a 480x270
    # frame costs ~12% more.
    min_size: int = 27
    max_size: int = 0  # largest face side, original-frame pixels; 0 = no limit
    max_width: int = 480  # detection resolution: frames wider than this (or taller than twice it) are downscaled
    cascade: str = "haarcascade_frontalface_default.xml"  # name in cv2.data.haarcascades, or a path
    # Histogram-equalise the grey frame first. Off: on five-celebs it hid a half-shadowed face at 7 of
    # 9 rolls and lowered the rotated mean from 0.951 to 0.938 (tools/eval_five_celebs.py).
    equalize: bool = False
    merge_distance: float = 0.5  # hits whose centres lie within this x size are one face
    # A merged face is kept when any of: its second opinion reaches verify_min_neighbors,
    # min_eyes > 0 eyes were found, or its summed neighbours reach min_score (the false hits'
    # scores overlap those of real, harder faces, hence the high default). The eye cascades
    # run on a small upright crop; two eyes refine the angle from the eye line.
    eyes: list[str] = field(default_factory=lambda: ["haarcascade_eye.xml", "haarcascade_eye_tree_eyeglasses.xml"])
    eye_min_neighbors: int = 1
    min_eyes: int = 0  # eyes (image-left/right halves) that verify a face regardless of score
    # Second opinion: another face cascade on the upright crop around each merged face;
    # its neighbours at the right place and size verify the face (works with sunglasses,
    # where the eye cascades fail). "" disables.
    verify_cascade: str = "haarcascade_frontalface_alt2.xml"
    verify_min_neighbors: int = 8  # second-opinion neighbours that verify a face
    # ... or, on the crop histogram-equalised, this many (0 disables): a washed-out face the plain crop
    # leaves short (the real walking clip's two 33 px faces were found only with it). The false faces of
    # door_clip seeds 1-8 (wood grain, a cup) reached 9 there. Asked only when the plain one falls short.
    verify_equalized_min_neighbors: int = 12
    # ... or dlib's HOG face filters (edgeface.vision.hog; "" disables) score it at least hog_min_score,
    # asked only when the cascades' opinions fall short. The real walking-and-pause clip's faces with
    # glasses score -0.83..0.26 (most above -0.5), the false candidates of door_clip seeds 1-8 at most
    # -0.67. It also checks the finer region search's hits (HaarDetector.track_search).
    hog_model: str = "hog_frontal.npz"  # name in models/, or a path
    hog_min_score: float = -0.5
    # Stills only (enroll, identify): when the cascades find no face (on the picture, or a crop set in
    # a canvas), dlib's HOG detector itself runs over the picture, its five filters (frontal, turned
    # left and right, tilted) on a scale pyramid, and names faces scoring at least this (dlib's own
    # threshold is 0). It finds heads turned 30-60 degrees the frontal cascade misses (LFW crops).
    # null disables. Never on video: it costs 0.02-0.24 s a picture here.
    still_hog_min_score: float | None = 0.0
    # drop a verified face centred inside a stronger one (or holding its centre), and a box stacked on
    # the forehead of a face of its size (geometry.suppress_stacked)
    suppress_nested: bool = True
    # Tracked-face search (detect(frame, regions=...)): each region is searched in an upright
    # crop of region_margin x its size, turned to its last angle plus each of region_angles, for
    # faces of its last size / region_size_ratio .. x region_size_ratio. The score-weighted merge
    # of the three angles follows the roll, so no eye search is needed for a tracked face; and a
    # face found where a tracked (already verified) face was needs no second opinion either.
    # Five-celebs clips (tools/score_names.py), vs the earlier [0], 2.5, 1.6 with eyes and second
    # opinion: 0.956-0.974 of appearances named (was 0.93-0.95) at ~1/4 of the cost per face.
    region_angles: list[float] = field(default_factory=lambda: [-10.0, 0.0, 10.0])
    region_margin: float = 2.0
    region_size_ratio: float = 1.3
    threads: int = 1  # >1: the angles of a full sweep run on a thread pool (cv2 releases the GIL)
    # Video (the daemon, bench): while faces are tracked, only the region search runs near them,
    # plus a rolling sweep: each angle of the grid scanned over the whole frame once every
    # sweep_period frames, at most one angle a frame, so a face entering at any roll is found
    # within sweep_period frames while no frame pays for a full sweep. 1 = full sweep every frame.
    sweep_period: int = 25
    # A full sweep runs at once when nothing is tracked, or when the scene changes: the mean
    # absolute grey difference (0..255) between 64x48 thumbnails of consecutive frames exceeds
    # this (a cut, the camera moved, lights); the tracker then votes on every face again.
    # On five-celebs clips cuts score >= 34 and faces moving and turning <= 4.4. 0 disables.
    scene_change: float = 12.0
    min_score: float = 1000.0  # summed neighbours that verify a face on their own; 0 keeps all
    # Turned heads (yaw): OpenCV's profile cascade sees one side; the mirrored picture gives the
    # other. It runs at profile_angles in every full search, and in the region search of a nearly
    # upright tracked face. A face only the profile cascade found is kept when its summed
    # neighbours reach profile_min_score (there is no frontal second opinion for it). "" disables.
    # On by default since the rename margin (tracking.rename_margin) and the stacked-box rule: make_clip
    # seeds 2, 3, 4, 7, 9, 11 and door_clip seeds 1-8 name the same share with it as without, with no
    # wrong name (before them, seed 9 showed 32 wrong-name frames with it); "" turns it off (10-25%
    # more frames/s on the composed clips).
    profile_cascade: str = "haarcascade_profileface.xml"
    profile_angles: list[float] = field(default_factory=lambda: [0.0])
    profile_min_score: float = PROFILE_MIN_SCORE
    # Video only: a second frontal cascade joins the sweep at roll 0 (one pass per search of an area,
    # once a period of a rolling sweep), for faces the first one misses in every frame. The blonde
    # woman of the real walking-and-pause clip is found by it from her first frame; the default
    # cascade does not find her there even at minNeighbors 1. A face only it found has no independent
    # second opinion (it is the verify_cascade too): it is kept only where dlib's HOG filters score it
    # at least hog_min_score (none without hog_model). Stills (enroll, identify) do not use it. "" disables.
    upright_cascade: str = "haarcascade_frontalface_alt2.xml"
    # Video: the milliseconds of cascade passes a frame may spend beyond tracked faces' region
    # search (which always runs). Passes are queued in priority order (new moving areas, areas
    # around tracked faces, the slow whole-frame sweep); what the budget leaves carries over to the
    # next frames, oldest first. 0 = no limit. See BUDGET_MS for how the default was chosen.
    budget_ms: float = BUDGET_MS

    def __post_init__(self) -> None:
        # Each of these, out of range, gives a detector that runs and never finds a face (or
        # fails in cv2 on the first frame): refused up front, every broken rule at once.
        require((len(self.angles) > 0, "angles must list at least one roll angle"),
                (all(within(a, -180.0, 180.0) for a in self.angles), "angles must be degrees within -180..180"),
                (self.scale_factor > 1.0 and self.scale_factor <= 3.0,
                 "scale_factor must be above 1 (up to 3); 1.1 is usual"),
                (self.min_neighbors >= 0, "min_neighbors must not be negative"),
                (self.min_size >= 0, "min_size must not be negative (pixels)"),
                (self.max_size == 0 or self.max_size >= max(self.min_size, 1),
                 "max_size must be 0 (no limit) or at least min_size"),
                (self.max_width == 0 or self.max_width >= 64,
                 "max_width must be 0 (no downscaling) or at least 64 pixels"),
                (self.merge_distance > 0, "merge_distance must be positive"),
                (self.eye_min_neighbors >= 0, "eye_min_neighbors must not be negative"),
                (within(self.min_eyes, 0, 2), "min_eyes must be 0, 1 or 2"),
                (self.verify_min_neighbors >= 0, "verify_min_neighbors must not be negative"),
                (self.verify_equalized_min_neighbors >= 0, "verify_equalized_min_neighbors must not be negative"),
                (len(self.region_angles) > 0, "region_angles must list at least one angle"),
                (all(within(a, -90.0, 90.0) for a in self.region_angles),
                 "region_angles must be degrees within -90..90"),
                (self.region_margin >= 1.0, "region_margin must be at least 1 (the crop holds the face)"),
                (self.region_size_ratio >= 1.0, "region_size_ratio must be at least 1"),
                (within(self.threads, 1, 64), "threads must be 1..64"),
                (self.sweep_period >= 1, "sweep_period must be at least 1 frame (1: a full sweep every frame)"),
                (within(self.scene_change, 0.0, 255.0), "scene_change must be 0..255 (0 disables)"),
                (self.min_score >= 0, "min_score must not be negative"),
                (all(within(a, -90.0, 90.0) for a in self.profile_angles),
                 "profile_angles must be degrees within -90..90"),
                (self.profile_min_score >= 0, "profile_min_score must not be negative"),
                (self.still_hog_min_score is None or within(self.still_hog_min_score, -1.0, 10.0),
                 "still_hog_min_score must be -1..10 (dlib's threshold is 0) or null"),
                (self.budget_ms >= 0 and self.budget_ms <= 10000, "budget_ms must be 0 (no limit) .. 10000"))

    def hog_path(self) -> str:
        if os.path.isfile(self.hog_model):
            return self.hog_model
        path = shipped_file(self.hog_model)
        if not path.is_file():
            raise FileNotFoundError(f"detection.hog_model: {self.hog_model!r} is neither a file nor in {path.parent}")
        return str(path)

    def cascade_path(self, name: str | None = None, key: str = "detection.cascade") -> str:
        name = self.cascade if name is None else name
        if os.path.isfile(name):
            return name
        path = os.path.join(HAARCASCADES, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{key}: {name!r} is neither a file nor a cascade in {HAARCASCADES}")
        return path
