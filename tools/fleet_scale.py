"""Fleet sync at scale: PEOPLE people x PHOTOS embeddings through a real mosquitto.

The broker is a stock mosquitto: its default per-client queue (max_queued_messages 1000) and
in-flight window, persistence on. Nothing in edgeface asks the broker for more.

1. Device A's gallery is filled with random 128-d embeddings and its FleetSync publishes them
   (one retained record per photo; each counts as sent only on the broker's PUBACK).
2. mosquitto is restarted (its persistence file must bring the records back).
3. A new device with an empty gallery joins: the time until it holds every face is the
   catch-up time.
4. --junk N: N unsigned retained messages are put on the fleet's topics (half on the record
   layout's buckets, half on the old one-level layout), then another new device joins.
Prints one JSON line: records, publish time, catch-up times, faces on the new devices, broker
RSS, persistence file size.

    python tools/fleet_scale.py [--people 1000] [--photos 5] [--junk 50000]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

from edgeface.cli.testbroker import free_port
from edgeface.config import FleetConfig, MqttConfig
from edgeface.fleet.sync import FleetLedger, FleetSync
from edgeface.store.gallery import Enrolment, Gallery

MODEL = "f" * 64


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_mosquitto(folder: Path, port: int) -> subprocess.Popen:
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                    f"persistence_location {folder}/\nautosave_interval 1\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    time.sleep(0.5)
    return proc


def wait_until(predicate, timeout: float, step) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        step()
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    raise SystemExit(f"timed out after {timeout} s")


def join(db: Path, key: Path, mqtt_cfg: MqttConfig, records: int, name: str) -> tuple[float, int]:
    """A new device with an empty gallery: seconds until it holds every face (or its catch-up ended), faces."""
    with Gallery(db) as g:
        device = FleetSync(FleetConfig("home", str(key), name), mqtt_cfg, MODEL, f"scale-{name}")
        seconds = wait_until(lambda: len(FleetLedger(g).faces()) >= records or device.idle(), 600,
                             lambda: device.step(g))
        faces = len(FleetLedger(g).faces())
        device.close()
    return seconds, faces


def put_junk(port: int, n: int) -> None:
    """n unsigned retained messages on the fleet's topics, as anyone allowed to publish could put there."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="junk")
    c.connect("127.0.0.1", port)
    c.loop_start()
    for i in range(n):
        level = os.urandom(32).hex()
        topic = f"edgeface/fleet/home/records/{level[:2]}/{level[2:4]}/{level}" if i % 2 else \
            f"edgeface/fleet/home/faces/{level}"
        info = c.publish(topic, b'{"junk": %d}' % i, qos=1, retain=True)
        if i % 500 == 499:
            info.wait_for_publish(30)
    info.wait_for_publish(30)
    c.loop_stop()
    c.disconnect()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=1000)
    ap.add_argument("--photos", type=int, default=5)
    ap.add_argument("--junk", type=int, default=0, help="unsigned retained messages to add before a second new device")
    args = ap.parse_args()
    if not shutil.which("mosquitto"):
        raise SystemExit("needs mosquitto on PATH (apt-get install mosquitto)")
    work = Path(tempfile.mkdtemp(prefix="fleet-scale-"))
    work.chmod(0o777)  # mosquitto started as root drops to its own user, which must write its persistence file
    key = work / "fleet.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    port = free_port()
    broker = start_mosquitto(work, port)
    mqtt_cfg = MqttConfig(host="127.0.0.1", port=port, qos=1)
    rng = np.random.default_rng(0)
    try:
        with Gallery(work / "a.db") as a:
            for p in range(args.people):
                a.add(f"person-{p:05d}", [Enrolment(rng.normal(size=128).astype(np.float32), os.urandom(32).hex(),
                                                    f"p{p}-{k}.jpg") for k in range(args.photos)], MODEL)
            device_a = FleetSync(FleetConfig("home", str(key), "a"), mqtt_cfg, MODEL, "scale-a")
            records = args.people * args.photos
            publish_s = wait_until(lambda: len(FleetLedger(a).entries()) >= records, 600, lambda: device_a.step(a))
            time.sleep(2.0)  # autosave
            device_a.close()
        loaded_rss = rss_kib(broker.pid)
        broker.terminate()
        broker.wait(10)
        size = sum(f.stat().st_size for f in work.glob("*.db") if f.name.startswith("mosquitto"))
        broker = start_mosquitto(work, port)
        catch_up_s, faces = join(work / "b.db", key, mqtt_cfg, records, "b")
        junk: dict = {}
        if args.junk:
            put_junk(port, args.junk)
            junk_s, junk_faces = join(work / "c.db", key, mqtt_cfg, records, "c")
            junk = {"junk_messages": args.junk, "catch_up_s_with_junk": round(junk_s, 2),
                    "faces_on_new_device_with_junk": junk_faces}
        print(json.dumps({
            "people": args.people, "photos_per_person": args.photos, "records": records,
            "messages_per_enrolment": args.photos, "publish_s": round(publish_s, 2),
            "catch_up_s": round(catch_up_s, 2), "faces_on_new_device": faces, **junk,
            "broker_rss_mib_loaded": round(loaded_rss / 1024, 1),
            "broker_rss_mib_after_restart": round(rss_kib(broker.pid) / 1024, 1),
            "persistence_file_mib": round(size / 2**20, 2),
        }))
    finally:
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
