"""The edgeface command as a user runs it: real images, the real model, a real gallery file."""
import json
import sqlite3
from pathlib import Path

import pytest
from faces import astronaut_bgr, turned, write_jpeg
from running import edgeface


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    face = astronaut_bgr()
    paths = {"upright": write_jpeg(d / "upright.jpg", face)}
    for angle in (-50, 35):
        paths[angle] = write_jpeg(d / f"turned{angle:+d}.jpg", turned(face, angle))
    return paths


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, photos):
    db = tmp_path_factory.mktemp("gallery") / "g.db"
    r = edgeface("enroll", "eileen", photos["upright"], "--gallery", db)
    assert r.returncode == 0, r.stderr
    assert "1 new face(s) enrolled" in r.stdout
    return db


def test_identify_json_names_the_enrolled_face_at_any_roll(gallery, photos):
    r = edgeface("identify", photos["upright"], photos[-50], photos[35], "--gallery", gallery, "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [line["image"] for line in lines] == [photos["upright"], photos[-50], photos[35]]
    for line, angle in zip(lines, (0, -50, 35)):
        named = [f for f in line["faces"] if f["name"] == "eileen"]
        assert len(named) == 1, line
        face = named[0]
        assert set(face) == {"name", "score", "box", "angle"}
        assert abs(face["angle"] - angle) <= 15
        x, y, w, h = face["box"]
        assert w > 80 and h > 80 and x >= 0 and y >= 0


def test_reenrolling_the_same_photo_is_a_no_op(gallery, photos, cli):
    r = cli("enroll", "eileen", photos["upright"], "--gallery", gallery)
    assert r.returncode == 0 and "0 new face(s) enrolled, 1 already there" in r.stdout
    r = cli("gallery", "list", "--gallery", gallery, "--json")
    assert json.loads(r.stdout) == [{"name": "eileen", "embeddings": 1}]


def test_bad_files_are_reported_per_file_and_nothing_is_written(tmp_path, photos, cli):
    db = tmp_path / "g.db"
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture\n" * 10)
    cut = tmp_path / "cut.jpg"
    data = open(photos["upright"], "rb").read()
    cut.write_bytes(data[: len(data) // 2])
    blank = write_jpeg(tmp_path / "blank.jpg", astronaut_bgr()[:, :, :] * 0 + 128)
    r = cli("enroll", "nobody", text, cut, blank, tmp_path / "missing.jpg", "--gallery", db)
    assert r.returncode == 1
    for name, reason in (("notes.jpg", "not an image"), ("cut.jpg", "truncated"), ("blank.jpg", "no face"),
                         ("missing.jpg", "no such file")):
        assert any(name in line and reason in line for line in r.stderr.splitlines()), (name, r.stderr)
    assert "nothing enrolled" in r.stderr
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM people").fetchone()[0] == 0


def test_identify_reports_unreadable_images_and_exits_non_zero(gallery, tmp_path, photos, cli):
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    r = cli("identify", bad, photos["upright"], "--gallery", gallery, "--json")
    assert r.returncode == 1 and "bad.jpg" in r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert lines[0]["faces"] == [] and "error" in lines[0] and lines[1]["faces"]


def test_identify_needs_an_existing_gallery(tmp_path, photos, cli):
    r = cli("identify", photos["upright"], "--gallery", tmp_path / "none.db")
    assert r.returncode == 1 and "gallery not found" in r.stderr


def test_gallery_made_by_another_model_is_refused_with_advice(tmp_path, gallery, photos, cli):
    other = tmp_path / "other.db"
    other.write_bytes(gallery.read_bytes())
    con = sqlite3.connect(other)
    con.execute("UPDATE meta SET value = ? WHERE key = 'model_id'", ("0" * 64,))
    con.commit()
    con.close()
    r = cli("identify", photos["upright"], "--gallery", other)
    assert r.returncode == 1 and "another model" in r.stderr and "Re-enrol" in r.stderr


def test_gallery_export_import_remove(tmp_path, gallery, cli):
    out = tmp_path / "export.json"
    assert cli("gallery", "export", out, "--gallery", gallery).returncode == 0
    copy = tmp_path / "copy.db"
    r = cli("gallery", "import", out, "--gallery", copy)
    assert r.returncode == 0 and "imported 1 new face(s)" in r.stdout
    r = cli("gallery", "remove", "eileen", "--gallery", copy)
    assert r.returncode == 0
    r = cli("gallery", "remove", "eileen", "--gallery", copy)
    assert r.returncode == 1 and "no person named 'eileen'" in r.stderr
    assert cli("gallery", "list", "--gallery", copy, "--json").stdout.strip() == "[]"


def test_gallery_rename_and_its_usage_errors(tmp_path, gallery, cli):
    copy = tmp_path / "copy.db"
    copy.write_bytes(Path(gallery).read_bytes())
    r = cli("gallery", "rename", "eileen", "--gallery", copy)
    assert r.returncode == 2 and "required: NEW" in r.stderr
    r = cli("gallery", "remove", "eileen", "extra", "--gallery", copy)
    assert r.returncode == 2 and "unrecognized arguments: extra" in r.stderr
    r = cli("gallery", "rename", "eileen", "eileen collins", "--gallery", copy)
    assert r.returncode == 0 and "renamed eileen to eileen collins (1 face(s))" in r.stdout
    r = cli("gallery", "list", "--gallery", copy, "--json")
    assert [p["name"] for p in json.loads(r.stdout)] == ["eileen collins"]


def test_gallery_list_name_shows_photos_and_remove_photo_takes_one(tmp_path, gallery, photos, cli):
    copy = tmp_path / "copy.db"
    copy.write_bytes(Path(gallery).read_bytes())
    r = cli("gallery", "list", "eileen", "--gallery", copy)
    assert r.returncode == 0 and "\tface\t" in r.stdout and r.stdout.rstrip().endswith(photos["upright"]), r.stdout
    r = cli("gallery", "list", "eileen", "--gallery", copy, "--json")
    (row,) = json.loads(r.stdout)
    assert row["source"] == photos["upright"] and not row["not_them"] and len(row["sha256"]) == 64
    r = cli("gallery", "list", "--photo", photos["upright"], "--gallery", copy)
    assert r.returncode == 2 and "unrecognized arguments: --photo" in r.stderr
    r = cli("gallery", "remove", "eileen", "--photo", photos[35], "--gallery", copy)
    assert r.returncode == 1 and "not one of this person's photos" in r.stderr
    r = cli("gallery", "remove", "eileen", "--photo", row["sha256"][:10], "--gallery", copy)
    assert r.returncode == 0, r.stderr
    assert "removed 1 face(s) of eileen" in r.stdout and "eileen had no face left and is removed" in r.stdout
    assert cli("gallery", "list", "--gallery", copy, "--json").stdout.strip() == "[]"


def test_help_explains_every_command(cli):
    r = edgeface("--help")  # `python -m edgeface` itself, once
    assert r.returncode == 0
    for command in ("enroll", "identify", "gallery", "events", "fleet", "run", "bench", "demo"):
        assert command in r.stdout
        assert cli(command, "--help").returncode == 0
    r = cli("gallery", "--help")
    for action in ("list", "remove", "rename", "export", "import", "check"):
        assert action in r.stdout
        help = cli("gallery", action, "--help")
        assert help.returncode == 0 and f"usage: edgeface gallery {action}" in help.stdout


def test_identify_and_enroll_read_the_daemons_config(tmp_path, gallery, photos, cli):
    """--config gives enroll and identify the daemon's own gallery, detection and recognition settings."""
    config = tmp_path / "edgeface.yaml"
    config.write_text(f"gallery: {gallery}\ndetection: {{angles: [0.0]}}\nrecognition: {{threshold: 0.9999}}\n")
    r = cli("identify", photos["upright"], photos[-50], "--config", config, "--json")
    assert r.returncode == 0, r.stderr
    upright, turned_50 = (json.loads(line) for line in r.stdout.splitlines())
    # the config's gallery was opened (no --gallery), its threshold left her unknown, and with only
    # the upright angle in its sweep the face turned by 50 degrees was not found at all
    assert [f["name"] for f in upright["faces"]] == [None] and upright["faces"][0]["score"] > 0.9
    assert turned_50["faces"] == []
    # the command line still overrides the config
    r = cli("identify", photos["upright"], "--config", config, "--threshold", "0.5", "--json")
    assert [f["name"] for f in json.loads(r.stdout)["faces"]] == ["eileen"]
    other = tmp_path / "other.db"
    r = cli("enroll", "eileen", photos[-50], "--config", config, "--gallery", other)
    assert r.returncode == 1 and "no face found" in r.stderr  # the config's upright-only sweep


def test_a_bad_config_is_a_usage_error_naming_the_file(tmp_path, photos, cli):
    config = tmp_path / "bad.yaml"
    config.write_text("detection: {angels: [0]}\n")
    r = cli("identify", photos["upright"], "--config", config)
    assert r.returncode == 2 and "bad.yaml" in r.stderr and "angels" in r.stderr


@pytest.mark.slow
def test_enroll_not_marks_a_face_that_is_then_never_named_as_that_person(tmp_path, photos, cli):
    db = tmp_path / "g.db"
    assert cli("enroll", "eileen", photos["upright"], "--gallery", db).returncode == 0
    r = cli("identify", photos[35], "--gallery", db, "--json")
    assert json.loads(r.stdout)["faces"][0]["name"] == "eileen"
    # the user says the turned photo is not eileen (here: to show the rule on a face it would name)
    r = cli("enroll", "--not", "eileen", photos[35], "--gallery", db)
    assert r.returncode == 0, r.stderr
    assert "1 new face(s) marked as not eileen" in r.stdout
    r = cli("identify", photos[35], photos["upright"], "--gallery", db, "--json")
    turned35, upright = (json.loads(line) for line in r.stdout.splitlines())
    assert [f["name"] for f in turned35["faces"]] == [None]
    assert [f["name"] for f in upright["faces"]] == ["eileen"]  # her own photo still names her
    r = cli("gallery", "list", "--gallery", db, "--json")
    assert json.loads(r.stdout) == [{"name": "eileen", "embeddings": 1, "negatives": 1}]


def test_enroll_not_needs_an_enrolled_person_and_keeps_the_gallery(tmp_path, photos, cli):
    db = tmp_path / "g.db"
    r = cli("enroll", "--not", "nobody", photos["upright"], "--gallery", db)
    assert r.returncode == 1 and "not found" in r.stderr and not db.exists()
    assert cli("enroll", "eileen", photos["upright"], "--gallery", db).returncode == 0
    r = cli("enroll", "--not", "nobody", photos[35], "--gallery", db)
    assert r.returncode == 1 and "no person named 'nobody'" in r.stderr
    r = cli("enroll", "--not", "eileen", photos["upright"], "--gallery", db)
    assert r.returncode == 1 and "cannot also be marked as not 'eileen'" in r.stderr
    r = cli("enroll", "eileen", "--gallery", db)
    assert r.returncode == 2 and "usage" in r.stderr


def test_gallery_check_reports_each_person_and_the_stranger_rate(tmp_path, gallery, cli):
    r = cli("gallery", "check", "--gallery", gallery, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert [p["name"] for p in report["people"]] == ["eileen"]
    assert report["people"][0]["tested"] == 0 and report["stranger_rate"] is None
    assert any("only 1 photo(s)" in a for a in report["advice"])
    r = cli("gallery", "check", "--gallery", gallery)
    assert r.returncode == 0 and "eileen" in r.stdout and "advice:" in r.stdout
