"""The brief's own scenarios on the five-celebs photos, driven exactly as a user would.

Needs EDGEFACE_DATASET (…/shared/datasets/five-celebs, set by .ci/run); skipped without it.
The acceptance scripts are read from the shared/acceptance folder beside the dataset.
"""
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from edgeface.config.detection import BUDGET_MS

DATASET = os.environ.get("EDGEFACE_DATASET")
pytestmark = [
    pytest.mark.dataset,
    pytest.mark.slow,
    pytest.mark.skipif(not DATASET or not Path(DATASET, "train").is_dir(), reason="EDGEFACE_DATASET not set"),
]
ACCEPTANCE = Path(DATASET or ".").resolve().parent.parent / "acceptance"
EDGEFACE = f"{sys.executable} -m edgeface"


def _script(name):
    path = ACCEPTANCE / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return str(path)


def test_rotated_five_celebs_every_angle_at_least_092():
    r = subprocess.run([sys.executable, _script("rotated_five_celebs.py"), DATASET, "--min", "0.92",
                        "--edgeface", EDGEFACE], capture_output=True, text=True, timeout=1200)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]


@pytest.fixture(scope="module")
def train_gallery(tmp_path_factory) -> Path:
    """Every five-celebs train person enrolled as a user would (once for the bench scenarios)."""
    db = tmp_path_factory.mktemp("gallery") / "g.db"
    for person in sorted(os.listdir(Path(DATASET, "train"))):
        subprocess.run([sys.executable, "-m", "edgeface", "enroll", person, str(Path(DATASET, "train", person)),
                        "--gallery", str(db)], check=True, capture_output=True)
    return db


def _bench(gallery: Path, clip_avi: str, *options: str) -> str:
    """`edgeface bench CLIP --gallery G --json [options]`'s output."""
    r = subprocess.run([sys.executable, "-m", "edgeface", "bench", clip_avi, "--gallery", str(gallery), "--json",
                        *options], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def two_face_clip(tmp_path_factory) -> Path:
    clip = tmp_path_factory.mktemp("clip") / "clip"
    # make_clip.py's defaults: the clip a user makes (250 frames). Its first 150 frames alone score
    # lower (0.82): there Elton John's small face, with his head leaning past a 60 degree roll, is
    # found only now and then, and the rolling sweep catches him too rarely (closing note, issue 5).
    subprocess.run([sys.executable, _script("make_clip.py"), DATASET, str(clip)], check=True, capture_output=True)
    return clip


@pytest.mark.parametrize("budget_ms", [None, 5])
def test_bench_on_a_two_face_clip_names_nearly_everyone_and_nobody_wrongly(train_gallery, two_face_clip, tmp_path,
                                                                           budget_ms):
    """budget_ms 5 stands in for a device several times slower than this machine (the default, 20, is
    what a Raspberry Pi 4 can spend at 10 frames/s): queued passes then spread over more frames. At 5
    (and 10) a corner of hair on this clip was named elton_john for 23 frames, until a face made of
    earlier frames' hits alone needed a stronger second opinion."""
    options = []
    if budget_ms is not None:
        config = tmp_path / "slow.yaml"
        config.write_text(f"detection:\n  budget_ms: {budget_ms}\n")
        options = ["--config", str(config)]
    clip = two_face_clip
    report = json.loads(_bench(train_gallery, f"{clip}.avi", *options))
    truth = json.loads(Path(f"{clip}.json").read_text())["frames"]
    assert report["frames"] == len(truth) == len(report["names"])
    assert report["budget_ms"] == (budget_ms if budget_ms is not None else BUDGET_MS)
    # a person shown twice in a frame needs their name twice
    right = sum(sum((Counter(n) & Counter(t)).values()) for n, t in zip(report["names"], truth))
    wrong = sum(len(n) for n in report["names"]) - right
    appearances = sum(len(t) for t in truth)
    print(f"named right {right}/{appearances}, wrong names {wrong}, {report['fps']} frames/s")
    assert right / appearances >= 0.85
    assert wrong <= 0.01 * appearances


def test_door_clip_names_everyone_who_walks_in_and_nobody_who_is_not_there(train_gallery, tmp_path):
    """Doorway footage (door_clip.py: mostly an empty room, people sliding in and out) through
    `edgeface bench` with motion gating on (the default), scored by door_score.py. Times to name
    are in clip time (frame index / fps), not wall-clock time."""
    clip = tmp_path / "door"
    subprocess.run([sys.executable, _script("door_clip.py"), str(Path(DATASET, "val")), str(clip), "--seconds", "30",
                    "--seed", "5"], check=True, capture_output=True)
    out = _bench(train_gallery, f"{clip}.avi")
    (tmp_path / "bench.json").write_text(out)
    report = json.loads(out)
    assert 0 < report["cascade_share"] < 1 and "motion" in report["stages_ms"]
    s = subprocess.run([sys.executable, _script("door_score.py"), str(tmp_path / "bench.json"), f"{clip}.json"],
                       capture_output=True, text=True, check=True)
    score = json.loads(s.stdout.strip().splitlines()[-1])
    print(score)
    assert score["appearances"] > 0 and score["missed"] == 0, score
    assert score["wrong_name_frames"] == 0, score
    assert score["ttn_max_s"] <= 1.5, score
