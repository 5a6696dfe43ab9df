"""edgeface.mqtt.presence: the pure state machine behind the per-person presence entities (no I/O, no sleeping)."""
import math
import re
import threading

import pytest

from edgeface.config import ConfigError, parse
from edgeface.mqtt.presence import Presence, PresenceUpdate
from edgeface.mqtt.topics import UNKNOWN_KEY, name_key

T0 = 1_700_000_000.0  # any wall-clock second: the machine only ever sees the times it is given


def machine(timeout=600.0, unknown_timeout=60.0, people=("alice", "bob")):
    p = Presence(timeout, unknown_timeout)
    p.set_people(list(people))
    return p


def test_newcomers_start_away_and_removed_people_are_taken_away():
    p = Presence(600, 60)
    assert p.set_people(["bob", "alice"]) == [PresenceUpdate("alice", False, None, None, None),
                                               PresenceUpdate("bob", False, None, None, None)]
    p.seen("bob", "door", 0.8, T0)
    updates = p.set_people(["alice", "carol"])
    assert updates == [PresenceUpdate("bob", False, "door", 0.8, T0, removed=True),
                       PresenceUpdate("carol", False, None, None, None)]
    assert p.people == ["alice", "carol"]
    assert p.set_people(["alice", "carol"]) == []  # nothing changed, nothing to say
    assert p.seen("bob", "door", 0.9, T0 + 1) == []  # an event that raced bob's removal


def test_present_on_sighting_and_away_exactly_timeout_after_the_last_one():
    p = machine(timeout=600)
    assert p.seen("alice", "door", 0.71, T0) == [PresenceUpdate("alice", True, "door", 0.71, T0)]
    assert p.expire(T0 + 599.9) == []
    # seen again at another camera 5 minutes later: the timeout runs from there
    assert p.seen("alice", "garden", 0.65, T0 + 300) == [PresenceUpdate("alice", True, "garden", 0.65, T0 + 300)]
    assert p.expire(T0 + 899.9) == []
    assert p.expire(T0 + 900.0) == [PresenceUpdate("alice", False, "garden", 0.65, T0 + 300)]
    assert p.expire(T0 + 10_000) == []  # goes away once
    # bob was never seen and never changes
    assert [u for u in p.states() if u.name == "bob"] == [PresenceUpdate("bob", False, None, None, None)]


def test_staying_in_view_refreshes_last_seen_without_a_message_per_frame():
    p = machine(timeout=600)  # refresh: min(60 s, timeout/4)
    frames = [T0 + k * 0.1 for k in range(36_000)]  # an hour at 10 fps in front of the door camera
    sent = [u for t in frames for u in p.seen("alice", "door", 0.7, t)]
    assert 55 <= len(sent) <= 62  # about one a minute, not 36 000
    assert all(u.present for u in sent)
    assert p.expire(frames[-1] + 599) == []  # still present: the last *frame* counts, not the last message
    assert p.expire(frames[-1] + 600)[0].present is False


def test_an_older_frame_from_a_slower_camera_does_not_move_the_person_back():
    p = machine()
    p.seen("alice", "garden", 0.7, T0 + 10)
    assert p.seen("alice", "door", 0.7, T0 + 9) == []
    assert p.expire(T0 + 609.9) == []
    assert p.expire(T0 + 610)[0].camera == "garden"


def test_the_unknown_visitor_has_its_own_short_timeout():
    p = machine(timeout=600, unknown_timeout=30)
    assert p.seen(None, "door", 0.21, T0) == [PresenceUpdate(None, True, "door", 0.21, T0)]
    p.seen("alice", "door", 0.8, T0)
    assert p.expire(T0 + 29) == []
    assert p.expire(T0 + 30) == [PresenceUpdate(None, False, "door", 0.21, T0)]
    assert p.expire(T0 + 600) == [PresenceUpdate("alice", False, "door", 0.8, T0)]
    assert p.states()[-1].name is None  # the unknown visitor is always part of the state


def test_configure_changes_timeouts_and_refuses_nonsense():
    p = machine(timeout=600)
    p.seen("alice", "door", 0.8, T0)
    p.configure(2.0, 1.0)
    assert p.expire(T0 + 2.0)[0].present is False
    for bad in (0, -1, math.nan):
        with pytest.raises(ValueError):
            Presence(bad, 60)


def test_concurrent_cameras_and_main_loop_agree():
    p = machine(timeout=5, people=[f"p{i}" for i in range(8)])
    sent: list[PresenceUpdate] = []
    lock = threading.Lock()

    def camera(cam):
        for k in range(2000):
            out = p.seen(f"p{k % 8}", cam, 0.7, T0 + k * 0.001)
            with lock:
                sent.extend(out)

    threads = [threading.Thread(target=camera, args=(c,)) for c in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert {u.name for u in sent} == {f"p{i}" for i in range(8)}
    gone = p.expire(T0 + 100)
    assert sorted(u.name for u in gone) == [f"p{i}" for i in range(8)]  # each exactly once
    assert all(not u.present for u in p.states())


def test_name_key_is_stable_distinct_and_topic_safe():
    assert name_key("alice") == "alice"
    assert name_key("ben_affleck") == "ben_affleck"
    assert name_key("Mary Jane") == "mary_jane_c82967"  # keys already in use stay (Home Assistant entity ids)
    keys = {name_key(n) for n in ("Anna B", "anna_b", "Zoë", "Zoe", "zoe", "+#/", "李")}
    assert len(keys) == 7
    for k in keys:
        assert k and all(c.isascii() and (c.isalnum() or c in "_-") for c in k)
    assert name_key("Anna B") == name_key("Anna B")


@pytest.mark.parametrize("names", [
    ("Mary Jane", "mary_jane_c82967"),  # a literal name that looks like another's hashed key (26.13)
    ("Alice", "alice", "a.lice", "ALICE"),  # Double Take's lower-cased topics shared these
    ("unknown", "Unknown"),  # the strangers' Double Take topic is "unknown"
    ("李", "😀", "#", "", "person"),  # all mapped to one empty (or the fallback) level
])
def test_name_keys_never_collide(names):
    keys = [name_key(n) for n in names]
    assert len(set(keys)) == len(keys), keys
    assert UNKNOWN_KEY not in keys
    assert all(k and "/" not in k and "#" not in k and "+" not in k for k in keys)


def test_presence_timeouts_follow_the_monotonic_clock_not_the_wall_clock():
    """26.8: NTP steps the wall clock a year forward, then an hour back; only the monotonic clock
    (driven here) decides who is present, and "last seen" still shows the wall clock."""
    p = Presence(600, 60)
    p.set_people(["alice"])
    mono, wall = 1_000.0, T0
    assert p.seen("alice", "door", 0.8, mono, wall)[0].last_seen == T0
    wall += 365 * 86400  # the clock jumps a year ahead: nobody expires
    assert p.expire(mono + 1) == []
    assert p.seen("alice", "door", 0.8, mono + 2, wall) == []  # no re-announcement either
    wall -= 3600  # ... then an hour back: a new sighting is not "older" than the last one
    update = p.seen("alice", "garden", 0.7, mono + 3, wall)
    assert update and update[0].camera == "garden" and update[0].last_seen == wall
    assert p.expire(mono + 3 + 599.9) == []
    gone = p.expire(mono + 3 + 600)  # ten monotonic minutes after the last sighting, whatever the wall says
    assert [u.present for u in gone] == [False] and gone[0].last_seen == wall


@pytest.mark.parametrize("text, message", [
    ("home: {presence_timeout: .nan}", "home.presence_timeout: must be a finite number"),
    ("home: {presence_timeout: 0}", "home.presence_timeout: must be a finite number of seconds above 0"),
    ("home: {presence_timeout: -5}", "home.presence_timeout: must be a finite number of seconds above 0"),
    ("home: {unknown_timeout: .inf}", "home.unknown_timeout: must be a finite number"),
    ("home: {presence_timeout: soon}", "home.presence_timeout: expected a number"),
    ("home: {double_take_prefix: 'a/+'}", "home.double_take_prefix: must be non-empty without MQTT wildcards"),
    ("home: {frigate_prefix: ''}", "home.frigate_prefix: must be non-empty without MQTT wildcards"),
    ("home: {presence: maybe}", "home.presence: expected true or false"),
])
def test_home_config_is_validated_with_the_key_named(text, message):
    with pytest.raises(ConfigError, match="^edgeface.yaml:1: " + re.escape(message)):
        parse(text, "edgeface.yaml")


def test_home_config_defaults_ten_minutes_and_outputs_off():
    home = parse("cameras: []").home
    assert home.presence and home.presence_timeout == 600 and not home.frigate and not home.double_take
