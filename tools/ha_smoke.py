"""The run half of tools/ha_smoke.sh: a real Home Assistant, a real mosquitto and `edgeface run`.

Started by ha_smoke.sh (which builds the userland and installs Home Assistant in it) as
    python tools/ha_smoke.py ROOT OUT
ROOT: the trixie userland with Home Assistant in /opt/hass; OUT: where the record goes.

  1. mosquitto on a free loopback port (this host's);
  2. Home Assistant (`hass` in ROOT, chrooted) with an automation from the README ("Someone unknown
     is at the door"), a user made with `hass --script auth`, a token from its login flow, and the
     MQTT integration set up through its config flow (REST, as the UI does it);
  3. `edgeface run` from this checkout on a looping clip with a stranger (skimage's astronaut;
     nobody enrolled but, where $EDGEFACE_DATASET has people, one of them), home.unknown_image on;
  4. recorded in OUT: the entity ids Home Assistant created (entities.json), the picture it serves
     at /api/image_proxy/image.<entity> (picture.jpg, compared with what edgeface published), the
     automation's last_triggered and the notification it made (summary.json).
Exits 1 when any of that is missing.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import cv2
import paho.mqtt.client as mqtt

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgeface.cli.demo import astronaut_bgr, clip_background, face_frame, head_and_shoulders  # noqa: E402

CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
USER, PASSWORD = "smoke", "smoke-password-1"
IMAGE_ENTITY = "image.edgeface_door_last_unknown_visitor"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


class Hass:
    def __init__(self, root: Path, port: int):
        self.root, self.port = root, port
        self.base = f"http://127.0.0.1:{port}"
        self.token = ""

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        env = {"HOME": "/root", "PATH": "/opt/hass/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        return subprocess.run([CHROOT, str(self.root), *args], env=env, **kw)

    def request(self, method: str, path: str, body: dict | None = None, form: dict | None = None,
                raw: bool = False, auth: bool = True):
        data, headers = None, {}
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        elif form is not None:
            data, headers["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            payload = r.read()
            return (payload, r.headers.get("Content-Type")) if raw else json.loads(payload or b"null")

    def wait_up(self, proc: subprocess.Popen, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise SystemExit(f"hass ended with {proc.returncode}")
            try:
                self.request("GET", "/api/", auth=False)
            except urllib.error.HTTPError as e:
                if e.code == 401:  # up, and wants a token
                    return
            except OSError:
                pass
            time.sleep(1)
        raise SystemExit(f"Home Assistant did not answer on {self.base} within {timeout:.0f} s")

    def login(self) -> None:
        client = self.base + "/"
        flow = self.request("POST", "/auth/login_flow", {"client_id": client, "handler": ["homeassistant", None],
                                                         "redirect_uri": client}, auth=False)
        done = self.request("POST", f"/auth/login_flow/{flow['flow_id']}",
                            {"client_id": client, "username": USER, "password": PASSWORD}, auth=False)
        if done.get("type") != "create_entry":
            raise SystemExit(f"login failed: {done}")
        tokens = self.request("POST", "/auth/token", form={"grant_type": "authorization_code", "code": done["result"],
                                                           "client_id": client}, auth=False)
        self.token = tokens["access_token"]

    def set_up_mqtt(self, port: int) -> dict:
        flow = self.request("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        if flow.get("step_id") != "broker":
            raise SystemExit(f"the MQTT config flow did not ask for a broker: {flow}")
        return self.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                            {"broker": "127.0.0.1", "port": port})

    def states(self) -> dict[str, dict]:
        return {s["entity_id"]: s for s in self.request("GET", "/api/states")}


def write_ha_config(config: Path, port: int) -> None:
    config.mkdir(parents=True)
    (config / "configuration.yaml").write_text(f"""
homeassistant:
  name: edgeface smoke
  latitude: 52.0
  longitude: 4.0
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: NL
  internal_url: http://127.0.0.1:{port}
http:
  server_host: 127.0.0.1
  server_port: {port}
config:
automation: !include automations.yaml
logger:
  default: warning
  logs:
    homeassistant.components.mqtt: info
    homeassistant.components.automation: info
""")
    # The README's automation; its notification carries the picture (the image entity's own
    # authenticated URL) and is also written to the log, where this run reads it back.
    (config / "automations.yaml").write_text(f"""
- id: edgeface_unknown_at_the_door
  alias: Someone unknown is at the door
  triggers:
    - trigger: state
      entity_id: binary_sensor.edgeface_unknown_visitor
      from: "off"
      to: "on"
  conditions:
    - condition: template
      value_template: "{{{{ trigger.to_state.attributes.camera == 'door' }}}}"
  actions:
    - action: persistent_notification.create
      data:
        title: Unknown visitor
        message: >-
          Unknown visitor at the {{{{ trigger.to_state.attributes.camera }}}} camera
          ![face](/api/image_proxy/{IMAGE_ENTITY})
    - action: system_log.write
      data:
        level: warning
        logger: edgeface.smoke
        message: >-
          EDGEFACE-SMOKE notified: unknown visitor at {{{{ trigger.to_state.attributes.camera }}}},
          picture {{{{ state_attr('{IMAGE_ENTITY}', 'entity_picture') }}}}
""")


def stranger_clip(path: Path, fps: float = 10.0, size=(320, 240)) -> None:
    """A stranger at the door for 3 s, then 6 s of empty doorway (looped by the camera)."""
    head, bg = head_and_shoulders(astronaut_bgr()), clip_background(size)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for k in range(30):
        vw.write(face_frame(head, -20 + 40 * k / 29, bg))
    for _ in range(60):
        vw.write(bg)
    vw.release()


def enrol_someone(work: Path, env: dict) -> str | None:
    """Someone from $EDGEFACE_DATASET, so a person's presence entity exists too (not in the clip)."""
    root = os.environ.get("EDGEFACE_DATASET")
    train = Path(root or "/nonexistent", "train")
    people = sorted(p for p in train.iterdir() if p.is_dir()) if root and train.is_dir() else []
    if not people:
        return None
    photos = sorted(people[0].iterdir())[:3]
    r = subprocess.run([sys.executable, "-m", "edgeface", "enroll", people[0].name, *map(str, photos), "--gallery",
                        str(work / "gallery.db")], cwd=REPO, env=env, capture_output=True, text=True)
    return people[0].name if r.returncode == 0 else None


def main() -> int:
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    work = out / "work"
    work.mkdir()
    procs: list[subprocess.Popen] = []
    ha_config_in_root = Path("/srv/edgeface-smoke")
    ha_config = root / ha_config_in_root.relative_to("/")
    shutil.rmtree(ha_config, ignore_errors=True)
    broker_port, ha_port = free_port(), free_port()
    summary: dict = {"broker_port": broker_port, "ha_port": ha_port}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        say(f"mosquitto on 127.0.0.1:{broker_port}")
        (work / "mosquitto.conf").write_text(f"listener {broker_port} 127.0.0.1\nallow_anonymous true\n")
        procs.append(subprocess.Popen(["mosquitto", "-c", str(work / "mosquitto.conf")],
                                      stdout=open(work / "mosquitto.log", "w"), stderr=subprocess.STDOUT))
        published: dict[str, bytes] = {}
        watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="smoke-watcher")
        watcher.on_message = lambda c, u, m: published.__setitem__(m.topic, bytes(m.payload))
        for _ in range(50):
            try:
                watcher.connect("127.0.0.1", broker_port)
                break
            except OSError:
                time.sleep(0.1)
        watcher.subscribe("edgeface/door/unknown_image")
        watcher.loop_start()

        hass = Hass(root, ha_port)
        version = hass.run("python", "-c", "from homeassistant.const import __version__; print(__version__)",
                           capture_output=True, text=True, check=True).stdout.strip()
        summary["home_assistant"] = version
        say(f"Home Assistant {version} on 127.0.0.1:{ha_port} (config {ha_config})")
        write_ha_config(ha_config, ha_port)
        hass.run("hass", "--script", "auth", "-c", str(ha_config_in_root), "add", USER, PASSWORD, check=True,
                 capture_output=True)
        t = time.monotonic()
        procs.append(subprocess.Popen(
            [CHROOT, str(root), "hass", "-c", str(ha_config_in_root), "--skip-pip", "--log-no-color"],
            env={"HOME": "/root", "PATH": "/opt/hass/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
            stdout=open(work / "hass.out", "w"), stderr=subprocess.STDOUT))
        hass.wait_up(procs[-1], 300)
        print(f"   up after {time.monotonic() - t:.0f} s")
        hass.login()
        entry = hass.set_up_mqtt(broker_port)
        summary["mqtt_config_entry"] = {k: entry.get(k) for k in ("type", "title")}
        print(f"   MQTT integration: {summary['mqtt_config_entry']}")
        if entry.get("type") != "create_entry":
            raise SystemExit(f"the MQTT config flow failed: {entry}")

        say("edgeface run: a stranger at the door, home.unknown_image on")
        clip = work / "door.avi"
        stranger_clip(clip)
        person = enrol_someone(work, env)
        summary["enrolled"] = person
        (work / "edgeface.yaml").write_text(json.dumps({
            "gallery": str(work / "gallery.db"),
            "cameras": [{"name": "door", "source": str(clip), "loop": True}],
            "mqtt": {"host": "127.0.0.1", "port": broker_port, "client_id": "edgeface-smoke"},
            "home": {"unknown_image": True, "unknown_timeout": 3, "presence_timeout": 30},
            "status_interval": 5,
        }))
        run = [sys.executable, "-m", "edgeface", "run", "--config", str(work / "edgeface.yaml")]
        procs.append(subprocess.Popen(run, cwd=REPO, env=env, stdout=open(work / "edgeface.log", "w"),
                                      stderr=subprocess.STDOUT))

        say("waiting for Home Assistant: entities, the automation, the picture")
        end, states = time.monotonic() + 180, {}
        while time.monotonic() < end:
            states = hass.states()
            auto = states.get("automation.someone_unknown_is_at_the_door", {})
            diagnostics = states.get("sensor.edgeface_door_fps", {}).get("state") not in (None, "unknown")
            if auto.get("attributes", {}).get("last_triggered") and IMAGE_ENTITY in states and diagnostics \
                    and "EDGEFACE-SMOKE notified" in (ha_config / "home-assistant.log").read_text(errors="replace"):
                break
            time.sleep(2)
        ours = {e: {"state": s["state"], "name": s["attributes"].get("friendly_name")}
                for e, s in sorted(states.items()) if "edgeface" in e}
        (out / "entities.json").write_text(json.dumps(ours, indent=1))
        print(f"   {len(ours)} edgeface entities:")
        for e, s in ours.items():
            print(f"     {e}: {s['state']}")
        auto = states.get("automation.someone_unknown_is_at_the_door", {})
        summary["automation_last_triggered"] = auto.get("attributes", {}).get("last_triggered")
        log = (ha_config / "home-assistant.log").read_text(errors="replace")
        notified = [line for line in log.splitlines() if "EDGEFACE-SMOKE notified" in line]
        summary["notification_log_line"] = notified[-1] if notified else None
        print(f"   automation last_triggered: {summary['automation_last_triggered']}")
        print(f"   its notification: {summary['notification_log_line']}")

        picture, kind = hass.request("GET", f"/api/image_proxy/{IMAGE_ENTITY}", raw=True)
        (out / "picture.jpg").write_bytes(picture)
        sent = published.get("edgeface/door/unknown_image")
        summary["picture"] = {"bytes": len(picture), "content_type": kind,
                              "same_as_published": sent is not None and picture == sent}
        entity_picture = states.get(IMAGE_ENTITY, {}).get("attributes", {}).get("entity_picture")
        if entity_picture:  # the URL a notification carries: authenticated by its own token
            by_token, _ = hass.request("GET", entity_picture, raw=True, auth=False)
            summary["picture"]["entity_picture_url_serves_it"] = by_token == picture
        print(f"   /api/image_proxy/{IMAGE_ENTITY}: {summary['picture']}")
        # e.g. "uses the deprecated option `object_id`": Home Assistant's word on our discovery
        summary["home_assistant_log_lines_about_edgeface_or_discovery"] = [
            line for line in log.splitlines() if any(w in line.lower() for w in ("edgeface", "deprecated", "discovery"))
            and "EDGEFACE-SMOKE" not in line][:20]
        summary["entities"] = sorted(ours)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        ok = bool(summary["automation_last_triggered"] and notified and summary["picture"]["same_as_published"]
                  and picture[:2] == b"\xff\xd8")
        say(f"ha smoke: {'PASS' if ok else 'FAIL'} (record in {out})")
        return 0 if ok else 1
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        for log_file in ha_config.glob("home-assistant.log*"):
            shutil.copy(log_file, out / log_file.name)


if __name__ == "__main__":
    sys.exit(main())
