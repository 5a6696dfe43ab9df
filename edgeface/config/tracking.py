"""tracking: how detections become tracks and when a track is announced."""
from __future__ import annotations

from dataclasses import dataclass

from edgeface.config.validate import require, within


@dataclass
class TrackingConfig:
    iou_min: float = 0.2  # box overlap at which a detection continues a track
    centre_max: float = 0.6  # ... or centre distance up to this many face sizes
    max_missed: float = 1.0  # seconds a track survives without a detection ...
    # ... and at least this many processed frames, so a slow device (1-2 frames/s) does not
    # split one appearance into many when a frame or two miss the face
    min_missed_frames: int = 2
    vote_count: int = 3  # embeddings voted over; announced once a name holds a majority of them
    reembed_interval: float = 1.0  # seconds between embeddings of a named track
    # An unknown face is re-checked more often: it may be someone enrolled seen at a hard angle.
    unknown_reembed_interval: float = 0.25
    unknown_events: bool = True  # announce faces that match nobody (name null)
    # ... only once one of their chips passed detect.ChipFaceCheck (an eye, or two face cascades
    # agreeing): on the door clips every unknown event with everyone enrolled was a false face.
    unknown_face_check: bool = True
    # ... and once its face is at least this many pixels across: enrolment's minimum
    # (recognition.enroll.MIN_FACE_PX). Below it an embedding strays too far from the face's own to
    # group into a visitor, and the crop could not be enrolled from; on door_clip seed 5 the one
    # unknown event under it was a false face on leaves (35 px) that started a visitor of its own.
    unknown_min_size: float = 40.0
    # A track decided unknown takes a name only from a match clearing that person's threshold by
    # this much (hysteresis), in every vote until it is named. On make_clip seeds 1-5, 7 and 11 and
    # door_clip seeds 1-4 a face decided unknown was matched to someone 6 times: 4 on false faces
    # (wood grain, a forehead; 0.001-0.010 over the threshold, shown named for 2-5 frames on three
    # of those clips) and 2 on an enrolled face first left unknown (0.0002 and 0.0017 over). A wrong
    # name costs more than a late one.
    rename_margin: float = 0.01
    # A match clearing its threshold by less than rename_margin names a face only when that chip
    # passes the face check (detect.ChipFaceCheck; ~4 ms, asked only for such close matches): make_clip
    # seed 7's false face on a punching bag beside Ben Affleck matched madonna 0.000-0.008 over her
    # threshold and was named for a frame in 4 of 7 runs on a loaded machine (0 of 14 with the check);
    # one of its chips passed the check in one run, so every close match is checked, not one a track.
    close_match_face_check: bool = True
    # A named face the cascade misses is followed by its look (vision.follow) for up to this many
    # seconds after the cascade last found it (0: never), where a part of the frame is at least
    # follow_min_score alike to it (normalised cross-correlation). On door_clip seeds 1-8, looking
    # for a face that had gone (the background where it was) scored up to 0.59, and faces still
    # there 0.73-0.99 (0.93-0.99 on the real female-and-male clip): 0.7 lies between.
    follow_s: float = 2.0
    follow_min_score: float = 0.7

    def __post_init__(self) -> None:
        # iou_min 0 would let any detection anywhere continue any track
        require((0 < self.iou_min <= 1, "iou_min must be above 0, up to 1 (box overlap)"),
                (self.centre_max >= 0, "centre_max must not be negative"),
                (self.max_missed >= 0, "max_missed must not be negative (seconds)"),
                (self.min_missed_frames >= 1, "min_missed_frames must be at least 1"),
                (within(self.vote_count, 1, 1000), "vote_count must be 1..1000"),
                (self.reembed_interval >= 0, "reembed_interval must not be negative (seconds)"),
                (self.unknown_reembed_interval >= 0, "unknown_reembed_interval must not be negative (seconds)"),
                (0 <= self.rename_margin <= 1, "rename_margin must be 0..1 (cosine similarity)"),
                (self.follow_s >= 0, "follow_s must not be negative (seconds)"),
                (-1 <= self.follow_min_score <= 1, "follow_min_score must be -1..1 (correlation)"),
                (self.unknown_min_size >= 0, "unknown_min_size must not be negative (pixels)"))
