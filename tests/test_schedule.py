"""The per-frame detection budget and its job queue (edgeface.vision.schedule), the profile cascade,
and decoding only what is looked at. Cascade passes are counted on the real detector; no time is
asserted (a budget of 0.001 ms runs exactly one queued pass a frame, whatever the machine)."""
import cv2
import numpy as np
import pytest
from faces import astronaut_bgr
from skimage import data
from test_motion import noisy, room

from edgeface.config import DetectionConfig, MotionConfig
from edgeface.recognition.embed import Embedder
from edgeface.recognition.match import Matcher
from edgeface.recognition.pipeline import FramePipeline, Recognizer
from edgeface.recognition.track import Tracker
from edgeface.vision.detect import FRONTAL, PROFILE, PROFILE_MIRROR, Detection, HaarDetector, Scan
from edgeface.vision.pixels import FramePixels, jpeg_size
from edgeface.vision.schedule import AGE_FRAMES, DetectionSchedule

TINY = 0.001  # ms: the budget is spent after the first queued pass of every frame


def sweep(box):
    return [Scan(box, float(a)) for a in (0, 20, -20, 40, -40, 60, -60)] + [Scan(box, 0.0, PROFILE),
                                                                             Scan(box, 0.0, PROFILE_MIRROR)]


class PassCounter(HaarDetector):
    """The real detector, counting its queued passes (scan) apart from tracked faces' region search."""

    def __init__(self, **cfg):
        super().__init__(DetectionConfig(**cfg))
        self.scans = 0

    def scan(self, prep, scan, pooled=False):
        self.scans += 1
        return super().scan(prep, scan, pooled)


@pytest.fixture(scope="module")
def embedder():
    return Embedder()


# -- the schedule alone ------------------------------------------------------------------------
def test_a_new_moving_area_gets_every_pass_and_its_queued_passes_follow_it():
    s = DetectionSchedule(sweep, DetectionConfig(), MotionConfig(idle_sweep_s=0))
    plan = s.plan(1, 0.0, [], [], [(100, 100, 200, 200)])
    assert [j.kind for j in plan.jobs] == ["new"] * 9 and plan.jobs[0].scan.angle == 0.0  # upright first
    s.finish(plan, 2, [], 0.0)
    plan = s.plan(2, 0.1, [], [], [(130, 100, 200, 200)])  # it moved: no second area, the rest follow it
    assert len(plan.jobs) == 7 and {j.now().box for j in plan.jobs} == {(130, 100, 200, 200)}
    assert s.stats.carried == 7 and s.stats.budget_out == 1


def test_an_area_searched_empty_gets_only_its_rolling_share_until_it_moves_away():
    motion = MotionConfig(sweep_period=9, idle_sweep_s=0)
    s = DetectionSchedule(sweep, DetectionConfig(), motion)
    box = (100, 100, 120, 120)
    plan = s.plan(1, 0.0, [], [], [box])
    s.finish(plan, len(plan.jobs), [], 0.0)  # every pass ran, no face
    plan = s.plan(2, 0.5, [], [], [box])  # remembered only once it stayed empty searched_confirm_s (1 s)
    assert [j.kind for j in plan.jobs] == ["new"] * 9
    s.finish(plan, len(plan.jobs), [], 1.0)
    per_frame, upright = [], 0
    for i in range(2, 20):  # a waving arm: the same place, a little different each frame
        plan = s.plan(i, i / 15, [], [], [(100 + i % 3, 100, 120, 120)])
        per_frame.append(len(plan.jobs))
        upright += sum(1 for j in plan.jobs if (j.scan.angle, j.scan.cascade) == (0.0, FRONTAL))
        s.finish(plan, len(plan.jobs), [], i / 15)
    # each pass once every 9 frames, the upright frontal one UPRIGHT_VISITS (3) times: 11 a period
    assert max(per_frame) <= 2 and sum(per_frame) == 22 and upright == 6
    assert {j.kind for j in plan.jobs} == {"searched"}
    plan = s.plan(21, 21 / 15, [], [], [(400, 300, 120, 120)])  # moved elsewhere: every pass again
    assert [j.kind for j in plan.jobs].count("new") == 9
    s.finish(plan, 0, [], 21 / 15)
    s2 = DetectionSchedule(sweep, DetectionConfig(), motion)
    s2.finish(s2.plan(1, 0.0, [], [], [box]), 9, [], 0.0)
    s2.finish(s2.plan(2, 1.0, [], [], [box]), 9, [], 1.0)
    plan = s2.plan(2, 0.1, [], [], [(60, 60, 240, 240)])  # grew fourfold: every pass again
    assert [j.kind for j in plan.jobs].count("new") == 9
    plan = DetectionSchedule(sweep, DetectionConfig(), MotionConfig(searched_memory_s=0, idle_sweep_s=0)).plan(
        1, 0.0, [], [], [box])
    assert len(plan.jobs) == 9


def test_where_something_stopped_moving_gets_one_more_upright_pass():
    motion = MotionConfig(settle_s=0.5, idle_sweep_s=0)
    s = DetectionSchedule(sweep, DetectionConfig(), motion)
    box = (100, 100, 120, 120)
    plan = s.plan(1, 0.0, [], [], [box])
    s.finish(plan, len(plan.jobs), [], 0.0)  # every pass ran, no face
    kinds = []
    for i in range(2, 12):  # it stopped: the motion stage shows nothing from frame 2
        plan = s.plan(i, (i - 1) * 0.1, [], [], [])
        kinds.append([(j.kind, j.scan.angle, j.scan.cascade, j.now().box) for j in plan.jobs])
        s.finish(plan, len(plan.jobs), [], (i - 1) * 0.1)
    assert kinds[:4] == [[]] * 4  # not before settle_s
    assert kinds[4] == [("new", 0.0, FRONTAL, box)] and kinds[5:] == [[]] * 5  # once, upright, where it was
    tracked = Detection(160, 160, 60, 0.0, 10.0)  # ... but not where a tracked face is: it is being searched
    s2 = DetectionSchedule(sweep, DetectionConfig(), motion)
    s2.finish(s2.plan(1, 0.0, [tracked], [tracked], [box]), 0, [tracked], 0.0)
    assert all(not s2.plan(i, i * 0.1, [tracked], [tracked], []).jobs for i in range(2, 12))
    s3 = DetectionSchedule(sweep, DetectionConfig(), MotionConfig(settle_s=0, idle_sweep_s=0))
    s3.finish(s3.plan(1, 0.0, [], [], [box]), 9, [], 0.0)
    assert all(not s3.plan(i, i * 0.1, [], [], []).jobs for i in range(2, 12))  # 0 disables


def test_two_areas_apart_near_tracked_faces_each_get_their_rolling_passes():
    s = DetectionSchedule(sweep, DetectionConfig(), MotionConfig(sweep_period=9, idle_sweep_s=0, settle_s=0))
    left, right = Detection(60, 100, 50, 0.0, 10.0), Detection(400, 100, 50, 0.0, 10.0)
    areas = [(20, 50, 100, 120), (350, 50, 100, 120)]
    boxes = set()
    for i in range(1, 10):
        plan = s.plan(i, i / 15, [left, right], [left, right], areas)
        boxes |= {(j.scan.angle, j.scan.cascade, j.now().box) for j in plan.jobs}
        s.finish(plan, len(plan.jobs), [left, right], i / 15)
    assert {(0.0, FRONTAL, a) for a in areas} <= boxes and len(boxes) == 18  # every pass over each area


def test_the_part_of_a_moving_area_beside_a_tracked_face_gets_every_pass():
    """Real walking-and-pause: the whole frame moved while three people walked in; once one was tracked,
    the area held a face, and the blonde woman beside him got only the rolling share of it."""
    s = DetectionSchedule(sweep, DetectionConfig(), MotionConfig(sweep_period=9, idle_sweep_s=0, settle_s=0))
    known = Detection(230, 100, 50, 0.0, 10.0)  # its box spans x 205..255
    plan = s.plan(1, 0.0, [known], [known], [(0, 0, 480, 270)])
    new = [j for j in plan.jobs if j.area is not None]  # every pass, ranked with the rolling ones
    assert {j.now().box for j in new} == {(0, 0, 205, 270), (255, 0, 225, 270)}  # left and right of it
    assert len(new) == 18 and all(j.kind == "near" for j in plan.jobs)
    s.finish(plan, len(plan.jobs), [known], 0.0)
    # an area only a little wider than the face (a head moving, an arm): no part beside it
    s2 = DetectionSchedule(sweep, DetectionConfig(), MotionConfig(sweep_period=9, idle_sweep_s=0, settle_s=0))
    plan = s2.plan(1, 0.0, [known], [known], [(160, 40, 160, 160)])
    assert {j.kind for j in plan.jobs} <= {"near"}


def test_no_job_starves_behind_a_stream_of_new_areas():
    s = DetectionSchedule(sweep, DetectionConfig(), MotionConfig(idle_sweep_s=1.0))
    ran_sweep = None
    for i in range(1, 200):
        x = (i * 37) % 500  # somewhere new every frame: always "new" passes waiting
        plan = s.plan(i, i / 15, [], [], [(x, 0, 40, 40)])
        if plan.jobs[0].kind == "sweep":
            ran_sweep = i
            break
        s.finish(plan, 1, [], i / 15)  # one pass a frame
    assert ran_sweep is not None and ran_sweep <= 5 * AGE_FRAMES


# -- the pipeline, real cascades -----------------------------------------------------------------
def face_in_room(x: int = 64, side: int = 400) -> np.ndarray:
    bg = room(5)
    bg[40:40 + side, x:x + side] = cv2.resize(astronaut_bgr(), (side, side),
                                              interpolation=cv2.INTER_AREA).astype(np.float32)
    return bg


def test_a_still_face_from_the_first_frame_is_found_at_once(embedder):
    detector = PassCounter(budget_ms=TINY)
    pipeline = FramePipeline(Recognizer(detector, embedder), Tracker(), MotionConfig())
    rng = np.random.default_rng(1)
    result = pipeline.process(noisy(face_in_room(), 0, rng), 0.0)
    # start-up: the whole frame is searched in full, over the budget (nothing is tracked yet)
    assert detector.scans == len(detector.sweep(video=True)) and len(result.faces) == 1
    for i in range(1, 10):
        before = detector.scans
        assert len(pipeline.process(noisy(face_in_room(), i, rng), i / 15).faces) == 1
        assert detector.scans - before <= 1  # then the budget: the region search keeps the face


def test_a_face_that_comes_to_rest_is_found_through_carried_over_passes(embedder):
    detector = PassCounter(budget_ms=TINY)
    pipeline = FramePipeline(Recognizer(detector, embedder), Tracker(), MotionConfig(idle_sweep_s=0))
    rng = np.random.default_rng(1)
    empty, face = room(5), face_in_room(260, 200)
    found_at, per_frame = None, []
    for i in range(40):  # an empty room; at frame 5 someone is there, and stands still
        before = detector.scans
        result = pipeline.process(noisy(empty if i < 5 else face, i, rng), i / 15)
        per_frame.append(detector.scans - before)
        if result.faces and found_at is None:
            found_at = i
    assert max(per_frame[1:]) == 1  # after start-up: one queued pass a frame, the rest carried over
    assert found_at is not None and 5 <= found_at < 5 + len(detector.sweep(video=True))
    assert pipeline.schedule.stats.carried > 0 and pipeline.schedule.stats.budget_out > 0
    assert len(pipeline.tracker.tracks) == 1  # and the region search keeps it, every frame


def test_the_budget_bounds_queued_passes_while_tracked_faces_are_always_searched(embedder):
    face = astronaut_bgr()
    recognizer = Recognizer(PassCounter(budget_ms=TINY), embedder)
    (enrolled,) = recognizer.embed(face, recognizer.detector.detect(face)[:1])
    recognizer.matcher = Matcher(["eileen"], enrolled[None], embedder.spec.threshold)
    detector = recognizer.detector
    assert isinstance(detector, PassCounter)
    pipeline = FramePipeline(recognizer, Tracker(), MotionConfig())
    rng = np.random.default_rng(2)
    named, track_frames = 0, 0
    for i in range(45):  # she slides in from the left and keeps moving: new moving areas every frame
        before_scans, before_calls = detector.scans, detector.cascade_calls
        tracked = len(pipeline.tracker.tracks)
        result = pipeline.process(noisy(face_in_room(min(200, 4 * i)), i, rng), i / 15)
        assert detector.scans - before_scans <= (len(detector.sweep(video=True)) if i == 0 else 1)  # start-up: in full
        if tracked:  # the region search ran besides the one queued pass
            track_frames += 1
            assert detector.cascade_calls - before_calls > detector.scans - before_scans
        named += any(tr.shown_name == "eileen" for tr, _ in result.faces)
    assert track_frames > 20 and named > 20


PROFILE_ON = DetectionConfig(profile_cascade="haarcascade_profileface.xml")


def test_a_profile_face_and_its_mirror_are_found():
    detector = HaarDetector(PROFILE_ON)
    camera = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)  # the cameraman, head turned to the side
    for picture in (camera, np.ascontiguousarray(camera[:, ::-1])):
        faces = detector.detect(picture)
        assert len(faces) == 1 and faces[0].profile
        assert 180 < faces[0].cx < 330 and 100 < faces[0].cy < 200  # his head
    assert HaarDetector(DetectionConfig(profile_cascade="")).detect(camera) == []  # the frontal cascade alone


def test_a_profile_chip_never_confirms_an_unknown_face(embedder):
    camera = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)
    frame = np.full((480, 640, 3), 120, np.uint8)
    frame[:480, :512] = camera[:480]
    pipeline = FramePipeline(Recognizer(HaarDetector(PROFILE_ON), embedder), Tracker(), MotionConfig())
    seen, events = [], []
    for i in range(20):
        result = pipeline.process(frame, i / 15)
        seen += [tr for tr, _ in result.faces]
        events += result.events
    assert seen and all(tr.detection.profile and not tr.face_confirmed for tr in seen)
    assert events == []  # no unknown-visitor event from a profile face alone


# -- decode only what is looked at ---------------------------------------------------------------
def test_frames_of_an_empty_room_are_decoded_only_as_far_as_looked_at(embedder):
    bg, rng = room(3), np.random.default_rng(3)
    pipeline = FramePipeline(Recognizer(HaarDetector(), embedder), Tracker(), MotionConfig(idle_sweep_s=0))
    frames, idle = [], []
    for i in range(45):
        ok, jpeg = cv2.imencode(".jpg", noisy(bg, i, rng))
        px = FramePixels(jpeg=jpeg.reshape(-1))
        assert px.size == (640, 480) and jpeg_size(jpeg.reshape(-1)) == (640, 480)
        queued = bool(pipeline.schedule.queue)
        pipeline.process(px, i / 15)
        frames.append(px)
        if not queued and i > 0:
            idle.append(px)
    assert frames[0].full_decodes == 1  # start-up's full sweep needs pixels (and carries over)
    assert len(idle) > 20  # it was over in a few frames
    later = idle
    assert sum(p.full_decodes for p in later) == 0  # nothing to search: never decoded in full
    looked = [p for p in later if p.reduced_decodes]
    assert all(p.reduced_decodes == 1 for p in looked)  # the motion check: one small grey decode
    stride = MotionConfig().idle_stride
    assert len(looked) == pytest.approx(len(later) / stride, abs=1)  # and the others not at all


def test_reduced_grey_decode_matches_the_full_decode():
    picture = astronaut_bgr()
    ok, jpeg = cv2.imencode(".jpg", picture)
    small = FramePixels(jpeg=jpeg.reshape(-1)).small_grey(160)
    full = FramePixels(image=picture).small_grey(160)
    assert small.shape == full.shape == (160, 160)
    assert float(np.abs(small.astype(float) - full).mean()) < 3.0
