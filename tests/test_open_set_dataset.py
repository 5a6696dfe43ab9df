"""Open set on five-celebs: every subset of the people enrolled in turn, through tools/eval_open_set.py.

Needs EDGEFACE_DATASET (set by .ci/run); skipped without it. The targets are the issue's:
enrolled people named right >= 0.95, strangers left unknown >= 0.97.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DATASET = os.environ.get("EDGEFACE_DATASET")
pytestmark = [
    pytest.mark.dataset,
    pytest.mark.slow,
    pytest.mark.skipif(not DATASET or not Path(DATASET, "train").is_dir(), reason="EDGEFACE_DATASET not set"),
]
ROOT = Path(__file__).resolve().parent.parent


def _eval(train, val, *extra):
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "eval_open_set.py"), str(train), str(val), "--json",
                        *extra], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_strangers_stay_unknown_and_enrolled_people_are_named_on_full_photos():
    result = _eval(Path(DATASET, "train"), Path(DATASET, "val"), "--photos", "5")
    assert [s["enrolled_people"] for s in result["splits"]] == [2, 3, 4]
    for split in result["splits"]:
        assert split["enrolled_named_right"] >= 0.95, split
        assert split["strangers_left_unknown"] >= 0.97, split
