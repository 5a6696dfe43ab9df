"""fleet: gallery sync with the household's other devices."""
from __future__ import annotations

import re
from dataclasses import dataclass

from edgeface.config.validate import require


@dataclass
class FleetConfig:
    name: str | None = None  # None: no fleet (this device's gallery is its own)
    key_file: str | None = None  # the shared secret, owner-only, 32 bytes or more
    device: str | None = None  # this device's id in the fleet; None: mqtt.client_id

    def __post_init__(self) -> None:
        require((self.name is None or bool(re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.name)),
                 "name must be 1-64 letters, digits, '.', '_' or '-' (it is an MQTT topic level)"),
                (self.name is None or bool(self.key_file), "key_file is needed with a fleet name"),
                (self.device is None or bool(re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.device)),
                 "device must be 1-64 letters, digits, '.', '_' or '-'"))
