"""Tracker logic: association, identity voting, events per appearance, embedding cadence."""
from edgeface.config import TrackingConfig
from edgeface.recognition.track import Tracker, continues
from edgeface.vision.detect import Detection


def face(cx, cy=100.0, size=80.0, angle=0.0):
    return Detection(cx, cy, size, angle, 10.0)


def run_frames(tracker, frames, names, t0=0.0, dt=0.1, face_check=lambda k: True):
    """Feed frames (lists of detections) with per-detection names; returns all events.
    face_check(k): whether the chips of frame k pass the face check (as FramePipeline asks it)."""
    events = []
    for k, dets in enumerate(frames):
        t = t0 + k * dt
        tracks = tracker.update(dets, t)
        for tr, name in zip(tracks, names[k]):
            if tr.needs_embedding(t):
                if name is None and not tr.face_confirmed:
                    tr.face_confirmed = face_check(k)
                tracker.observe(tr, name, 0.9 if name else 0.3, t)
        events += tracker.events(t)
    return events


def test_moving_face_keeps_its_track_and_gets_one_event():
    tr = Tracker(TrackingConfig(vote_count=3))
    frames = [[face(100 + 5 * k)] for k in range(30)]
    events = run_frames(tr, frames, [["ann"]] * 30)
    assert [e.name for e in events] == ["ann"]
    assert len({t.id for t in tr.tracks}) == 1
    e = events[0]
    assert e.track_id == tr.tracks[0].id and e.score == 0.9 and len(e.box) == 4
    assert abs(e.t - 0.1) < 1e-9  # 2 of 3 agree after the second embedding: settled, no need to wait


def test_two_faces_two_tracks_in_detection_order():
    tr = Tracker()
    frames = [[face(100 + k), face(400 - k)] for k in range(10)]
    events = run_frames(tr, frames, [["ann", "bob"]] * 10)
    assert sorted(e.name for e in events) == ["ann", "bob"]
    ids = tr.update([face(400 - 10), face(100 + 10)], 1.0)  # order swapped: tracks follow the faces
    assert [t.name for t in ids] == ["bob", "ann"]


def test_vote_outweighs_one_bad_embedding():
    tr = Tracker(TrackingConfig(vote_count=3))
    events = run_frames(tr, [[face(100)]] * 3, [["bob"], ["ann"], ["ann"]])
    assert [e.name for e in events] == ["ann"]
    assert abs(events[0].t - 0.2) < 1e-9  # split first two votes: waits for the third
    tr = Tracker(TrackingConfig(vote_count=5))
    events = run_frames(tr, [[face(100)]] * 5, [["ann"], ["bob"], ["ann"], ["bob"], ["ann"]])
    assert [e.name for e in events] == ["ann"] and abs(events[0].t - 0.4) < 1e-9


def test_unknown_face_announced_with_null_name_or_suppressed():
    events = run_frames(Tracker(), [[face(100)]] * 5, [[None]] * 5)
    assert [e.name for e in events] == [None]
    events = run_frames(Tracker(TrackingConfig(unknown_events=False)), [[face(100)]] * 5, [[None]] * 5)
    assert events == []


def test_an_unknown_face_waits_for_its_face_check():
    # never passes (a false face on the wallpaper): never announced
    assert run_frames(Tracker(), [[face(100)]] * 10, [[None]] * 10, face_check=lambda k: False) == []
    # passes from the 6th frame on (the visitor looked up): announced then, once
    events = run_frames(Tracker(), [[face(100)]] * 10, [[None]] * 10, face_check=lambda k: k >= 5)
    assert [e.name for e in events] == [None] and 0.5 <= events[0].t <= 0.5 + 0.25  # its next embedding
    # switched off: announced on the vote, as before
    events = run_frames(Tracker(TrackingConfig(unknown_face_check=False)), [[face(100)]] * 5, [[None]] * 5,
                        face_check=lambda k: False)
    assert [e.name for e in events] == [None] and abs(events[0].t - 0.1) < 1e-9
    # a named track that then matches nobody turns unknown only if that face passes the check
    # (it may have slid off the face onto the wall)
    quick = TrackingConfig(reembed_interval=0.0, unknown_reembed_interval=0.0)
    names = [["ann"]] * 3 + [[None]] * 7
    assert [e.name for e in run_frames(Tracker(quick), [[face(100)]] * 10, names, face_check=lambda k: False)] \
        == ["ann"]
    assert [e.name for e in run_frames(Tracker(quick), [[face(100)]] * 10, names)] == ["ann", None]
    late = run_frames(Tracker(quick), [[face(100)]] * 10, names, face_check=lambda k: k >= 8)
    assert [(e.name, round(e.t, 1)) for e in late] == [("ann", 0.1), (None, 0.8)]


def test_an_unknown_face_too_small_to_enrol_waits_until_it_is_that_large():
    from edgeface.recognition.enroll import MIN_FACE_PX

    assert TrackingConfig().unknown_min_size == MIN_FACE_PX  # what is too small to enrol starts no visitor
    # a false face on leaves, 35 px: never announced
    assert run_frames(Tracker(), [[face(100, size=35)]] * 10, [[None]] * 10) == []
    # a stranger coming closer: announced once 40 px across, once; someone enrolled is named at any size
    frames = [[face(100, size=30 + 2 * k)] for k in range(10)]
    events = run_frames(Tracker(), frames, [[None]] * 10)
    assert [e.name for e in events] == [None] and events[0].box[2] >= 40
    assert [e.name for e in run_frames(Tracker(), [[face(100, size=35)]] * 5, [["ann"]] * 5)] == ["ann"]


def test_identity_change_gives_a_second_event():
    cfg = TrackingConfig(vote_count=3, reembed_interval=0.0)
    tr = Tracker(cfg)
    names = [["ann"]] * 5 + [["bob"]] + [["ann"]] * 3 + [["bob"]] * 4
    events = run_frames(tr, [[face(100)]] * len(names), names)
    # a single odd "bob" does not flip it; a run of them does
    assert [e.name for e in events] == ["ann", "bob"]
    assert events[0].track_id == events[1].track_id


def test_leaving_and_coming_back_is_a_new_appearance():
    tr = Tracker(TrackingConfig(max_missed=1.0))
    events = run_frames(tr, [[face(100)]] * 5, [["ann"]] * 5)
    # short gap (0.5 s without detection) is the same appearance
    events += run_frames(tr, [[]] * 5 + [[face(100)]] * 5, [[]] * 5 + [["ann"]] * 5, t0=0.5)
    assert [e.name for e in events] == ["ann"]
    # a gap longer than max_missed: she left; coming back is announced again
    events += run_frames(tr, [[]] * 20 + [[face(100)]] * 5, [[]] * 20 + [["ann"]] * 5, t0=3.0)
    assert [e.name for e in events] == ["ann", "ann"]
    assert events[0].track_id != events[1].track_id


def test_far_apart_detection_starts_a_new_track():
    tr = Tracker()
    a = tr.update([face(100)], 0.0)[0]
    b = tr.update([face(500)], 0.1)[0]
    assert a.id != b.id
    c = tr.update([face(110, size=84)], 0.2)[0]  # near the first one again
    assert c.id == a.id


def test_stable_track_is_embedded_only_every_reembed_interval():
    cfg = TrackingConfig(vote_count=3, reembed_interval=1.0)
    tr = Tracker(cfg)
    embedded = 0
    for k in range(50):  # 5 s at 10 fps
        t = k * 0.1
        track = tr.update([face(100)], t)[0]
        if track.needs_embedding(t):
            embedded += 1
            tr.observe(track, "ann", 0.9, t)
        tr.events(t)
    # 3 votes, then about one per second for the remaining ~4.8 s
    assert 3 + 3 <= embedded <= 3 + 6
    assert embedded < 50 / 3


def test_events_are_drained():
    tr = Tracker(TrackingConfig(vote_count=1))
    track = tr.update([face(100)], 0.0)[0]
    tr.observe(track, "ann", 0.8, 0.0)
    assert len(tr.events(0.0)) == 1
    assert tr.events(0.1) == []


def test_unknown_track_is_rechecked_sooner_and_named_once_recognisable():
    cfg = TrackingConfig(vote_count=3, reembed_interval=1.0, unknown_reembed_interval=0.2)
    tr = Tracker(cfg)
    events, embedded = [], 0
    for k in range(30):  # 3 s at 10 fps: unrecognisable for the first second, then recognised
        t = k * 0.1
        track = tr.update([face(100, angle=60 - 4 * k)], t)[0]
        if track.needs_embedding(t):
            embedded += 1
            track.face_confirmed = True  # a real face (FramePipeline's face check)
            tr.observe(track, "ann" if t >= 1.0 else None, 0.9 if t >= 1.0 else 0.5, t)
        events += tr.events(t)
    assert [e.name for e in events] == [None, "ann"]
    assert events[0].track_id == events[1].track_id
    assert embedded < 30


def test_slow_frame_rate_does_not_split_an_appearance():
    # 1 frame/s with the face missed in one frame: still one track, one event
    tr = Tracker(TrackingConfig(max_missed=0.5, min_missed_frames=2, vote_count=2))
    frames = [[face(100)], [], [face(105)], [face(110)], [face(112)]]
    events = run_frames(tr, frames, [["ann"], [], ["ann"], ["ann"], ["ann"]], dt=1.0)
    assert [e.name for e in events] == ["ann"]
    assert len(tr.tracks) == 1


def test_someone_else_in_the_same_place_is_named_within_a_few_frames():
    # A cut, or one person stepping in front of another: the box barely moves, the face changes.
    tr = Tracker(TrackingConfig(vote_count=3, reembed_interval=1.0))
    frames = [[face(100)] for _ in range(40)]
    names = [["ann"]] * 20 + [["bob"]] * 20
    events = run_frames(tr, frames, names)
    assert [e.name for e in events] == ["ann", "bob"]
    assert events[1].t <= 2.0 + 1.0 + 0.25  # next re-embedding (<= 1 s) plus the vote, not a majority of slow ones


def test_one_confident_odd_match_revotes_but_announces_nothing_new():
    tr = Tracker(TrackingConfig(vote_count=3, reembed_interval=0.0))
    frames = [[face(100)] for _ in range(12)]
    names = [["ann"]] * 5 + [["bob"]] + [["ann"]] * 6
    events = run_frames(tr, frames, names)
    assert [e.name for e in events] == ["ann"]
    assert tr.tracks[0].name == "ann" and tr.tracks[0].decided


def test_new_scene_hides_names_until_each_face_is_voted_on_again():
    tr = Tracker(TrackingConfig(vote_count=3, reembed_interval=1.0))
    events = run_frames(tr, [[face(100), face(400)]] * 5, [["ann", "bob"]] * 5)
    assert sorted(e.name for e in events) == ["ann", "bob"]
    tr.new_scene()  # a cut: at the left, now carl; at the right, still bob
    assert [t.name for t in tr.tracks] == [None, None]
    assert all(t.needs_embedding(0.6) for t in tr.tracks)  # not after the 1 s re-embedding interval
    events = run_frames(tr, [[face(100), face(400)]] * 2, [["carl", "bob"]] * 2, t0=0.5)
    assert [e.name for e in events] == ["carl"]  # bob was announced already: not again
    assert [t.name for t in tr.tracks] == ["carl", "bob"]


def test_a_track_found_again_after_missed_frames_shows_its_name_only_once_an_embedding_confirms_it():
    """Just after a person leaves, something found where their face was (the door frame) continues
    their track; it must not be shown as them without a new embedding that agrees."""
    tracker = Tracker(TrackingConfig(vote_count=3, max_missed=1.0))
    (tr,) = tracker.update([face(100)], 0.0)
    tracker.observe(tr, "ann", 0.95, 0.0)
    tracker.observe(tr, "ann", 0.95, 0.0)  # two of three: decided
    assert tr.shown_name == "ann" and not tr.needs_embedding(0.1)
    tracker.update([], 0.1)  # missed a frame
    (again,) = tracker.update([face(104)], 0.2)
    assert again is tr and tr.shown_name is None and tr.needs_embedding(0.2)
    tracker.observe(tr, None, 0.5, 0.2)  # the embedding says: nobody known
    assert tr.shown_name is None and tr.needs_embedding(0.3)
    tracker.observe(tr, "ann", 0.94, 0.3)  # it is her after all
    assert tr.shown_name == "ann" and not tr.needs_embedding(0.35)
    assert [e.name for e in tracker.events(0.3)] == ["ann"]  # announced once, never again


def test_a_box_counts_as_the_same_face_where_it_would_continue_its_track():
    cfg = TrackingConfig()
    whole = face(350, 256, 141, 20)
    assert continues(whole, face(344, 180, 83, -32), cfg)  # eyes and forehead: 0.54 face sizes off (door clip)
    assert continues(whole, face(350, 256, 200), cfg)  # a larger box around it
    assert not continues(whole, face(350 + 1.0 * 141, 256, 141), cfg)  # a neighbour cheek to cheek
    assert not continues(face(461, 239, 120, 41), face(454, 140, 136, -20), cfg)  # 0.73 apart (make_clip s11)


def test_a_second_box_on_a_tracked_face_starts_no_track_and_the_track_follows_the_larger():
    """Door clip seed 5: a box on the eyes and forehead (smaller, 0.5 face sizes above the face's
    centre) was found beside the whole face's; it started a second track, which raised a second
    unknown event under a second visitor id."""
    tr = Tracker(TrackingConfig(vote_count=3))
    forehead = [face(300 - 2 * k, 180, 83, -35) for k in range(20)]
    whole = [face(305 - 2 * k, 256, 141, 20) for k in range(20)]
    # the forehead box is found first, then the whole face with it, sometimes strongest first
    frames = [[forehead[k]] for k in range(5)] + [[whole[k], forehead[k]] if k % 2 else [forehead[k], whole[k]]
                                                  for k in range(5, 20)]
    events = run_frames(tr, frames, [[None, None]] * 20)
    assert len(tr.tracks) == 1 and [e.name for e in events] == [None]
    assert tr.tracks[0].detection == whole[19]  # the track follows the whole face
    # and the other way round: the whole face is tracked, the forehead box comes and goes
    tr = Tracker(TrackingConfig(vote_count=3))
    frames = [[whole[k]] for k in range(5)] + [[forehead[k], whole[k]] if k % 3 else [whole[k]] for k in range(5, 20)]
    events = run_frames(tr, frames, [[None, None]] * 20)
    assert len(tr.tracks) == 1 and len(events) == 1 and tr.tracks[0].detection == whole[19]
    # two boxes on a face that nothing tracks yet: one new track, on the larger
    tr = Tracker()
    assert [t.detection for t in tr.update([forehead[0], whole[0]], 0.0)] == [whole[0]]


def test_two_people_standing_close_keep_two_tracks():
    tr = Tracker(TrackingConfig(vote_count=3))
    # cheek to cheek (centres 0.75 face sizes apart, boxes overlapping by a quarter), arriving together
    frames = [[face(200 + 2 * k, 200, 100), face(275 + 2 * k, 205, 100)] for k in range(10)]
    events = run_frames(tr, frames, [[None, None]] * 10)
    assert len(tr.tracks) == 2 and len(events) == 2
    # one comes to stand beside someone already tracked
    frames = [[face(500, 200, 90)] for _ in range(5)] + [[face(500, 200, 90), face(430, 195, 100)] for _ in range(5)]
    tr = Tracker(TrackingConfig(vote_count=3))
    events = run_frames(tr, frames, [["ann", None]] * 10)
    assert len(tr.tracks) == 2 and sorted(e.name or "" for e in events) == ["", "ann"]


def test_a_face_decided_unknown_is_renamed_only_by_a_clear_match():
    """Hysteresis: a false face (wood grain) that matched nobody must not be named when later chips
    creep just over someone's threshold; a clear match still names the face."""
    tracker = Tracker(TrackingConfig(vote_count=3, rename_margin=0.01))
    (tr,) = tracker.update([face(100)], 0.0)
    tracker.observe(tr, None, 0.91, 0.0, -0.015)
    tracker.observe(tr, None, 0.92, 0.1, -0.005)  # two of three: decided unknown
    assert tr.decided and tr.name is None
    for k in range(6):  # just over the threshold, again and again
        tracker.observe(tr, "ann", 0.93, 0.5 + k, 0.005)
    assert tr.shown_name is None
    tracker.observe(tr, "ann", 0.936, 6.0, 0.011)  # one clear match starts a new vote ...
    tracker.observe(tr, "ann", 0.926, 6.1, 0.001)  # ... in which the near ones still do not count
    tracker.observe(tr, "ann", 0.93, 6.2, 0.005)
    assert tr.shown_name is None
    for k in range(3):  # her, facing the camera
        tracker.observe(tr, "ann", 0.96, 7.0 + k, 0.035)
    assert tr.shown_name == "ann"
    fresh = Tracker(TrackingConfig(vote_count=3, rename_margin=0.01))
    (first,) = fresh.update([face(100)], 0.0)
    fresh.observe(first, "ann", 0.93, 0.0, 0.005)
    fresh.observe(first, "ann", 0.93, 0.1, 0.005)  # an undecided face is named by the plain rule
    assert first.shown_name == "ann"


def test_a_face_decided_unknown_stays_held_to_clear_matches_after_a_scene_change():
    """The lights change (a scene change) while a false face that matched nobody is tracked: its
    new vote must not name it on matches that only creep over a threshold."""
    tracker = Tracker(TrackingConfig(vote_count=3, rename_margin=0.01))
    (tr,) = tracker.update([face(100)], 0.0)
    tracker.observe(tr, None, 0.91, 0.0, -0.015)
    tracker.observe(tr, None, 0.92, 0.1, -0.005)
    assert tr.decided and tr.name is None
    tracker.new_scene()
    for k in range(3):
        tracker.update([face(100)], 0.2 + 0.1 * k)
        tracker.observe(tr, "ann", 0.93, 0.2 + 0.1 * k, 0.005)
    assert tr.decided and tr.shown_name is None
    tracker.new_scene()
    for k in range(3):  # someone clearly known now stands there: named
        tracker.update([face(100)], 1.0 + 0.1 * k)
        tracker.observe(tr, "ann", 0.96, 1.0 + 0.1 * k, 0.035)
    assert tr.shown_name == "ann"
