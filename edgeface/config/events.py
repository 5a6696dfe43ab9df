"""events: face crops of recent identity events kept on the device for review."""
from __future__ import annotations

import math
from dataclasses import dataclass

from edgeface.config.validate import require, within


@dataclass
class EventsConfig:
    keep_crops: bool = False  # keep each identity event's face crop on the device (never published)
    max_count: int = 200  # the newest this many are kept
    max_age: float = 7 * 86400.0  # seconds; older crops are deleted
    folder: str | None = None  # None: "events" beside the gallery

    def __post_init__(self) -> None:
        require((within(self.max_count, 1, 100_000), "max_count must be 1..100000"),
                (math.isfinite(self.max_age) and self.max_age > 0, "max_age must be a number of seconds above 0"),
                (self.folder != "", "folder must be a folder path (null: beside the gallery)"))
