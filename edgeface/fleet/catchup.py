"""Reading the retained records in pages, so catching up never depends on the broker's queue.

A broker queues a bounded number of messages per client (mosquitto: `max_queued_messages 1000`,
plus 20 in flight) and drops the rest, and subscribing to every record at once asks it to queue
all of them: a new device got 1,020 of 3,000. So a device subscribes to one bucket of records
(the first two hex digits of the key) or a few at a time, and, once the broker has answered,
publishes a marker to itself; the marker comes back after that page's retained messages, so the
page is done. A page that delivered SPLIT_AT messages or more (junk included) may have been cut
short: it is read again bucket by bucket, and a bucket that is still that full, sub-bucket by
sub-bucket (the next two hex digits). Junk retained beside the records can then cost at most the
records in the one sub-bucket it fills. Pages are sized from what earlier pages held, to about
PAGE_TARGET messages, so 5,000 records take a few dozen pages.

This module only plans; edgeface.fleet.sync subscribes and counts.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field

PAGE_TARGET = 200  # messages we ask the broker to queue at once
SPLIT_AT = 500  # a page this full may have been cut short by the broker's queue (mosquitto: 1,020)
PAGE_MAX_BUCKETS = 32
BUCKETS = [f"{i:02x}" for i in range(256)]


def bucket_filter(base: str, prefix: str) -> str:
    """prefix "ab": every record under records/ab; "ab/cd": one sub-bucket."""
    return f"{base}/records/{prefix}/#" if "/" not in prefix else f"{base}/records/{prefix}/+"


@dataclass
class Page:
    prefixes: list[str]
    drop: list[str] = field(default_factory=list)  # filters to unsubscribe first (a bucket read as sub-buckets)


class CatchUp:
    """The pages still to read, sized and split from what the read ones held."""

    def __init__(self, base: str):
        self.base = base
        self.todo: collections.deque[str] = collections.deque(BUCKETS)
        self.split: collections.deque[str] = collections.deque()  # prefixes to read alone, first
        self.read_buckets = 0.0
        self.read_messages = 0
        self.overfull: list[str] = []  # sub-buckets still too full: records there may be missed
        self._drop: list[str] = []

    def next_page(self) -> Page | None:
        drop, self._drop = self._drop, []
        if self.split:
            return Page([self.split.popleft()], drop)
        if not self.todo:
            return None
        per_bucket = self.read_messages / self.read_buckets if self.read_buckets else PAGE_TARGET
        n = max(1, min(PAGE_MAX_BUCKETS, int(PAGE_TARGET / max(per_bucket, 1.0))))
        return Page([self.todo.popleft() for _ in range(min(n, len(self.todo)))], drop)

    def done(self, page: Page, messages: int) -> None:
        """A page's marker came back after ``messages`` record messages (SPLIT_AT or more if it never came)."""
        if messages < SPLIT_AT:
            self.read_buckets += sum(1 if "/" not in p else 1 / 256 for p in page.prefixes)
            self.read_messages += messages
            return
        if len(page.prefixes) > 1:
            self.split.extendleft(reversed(page.prefixes))
        elif "/" not in page.prefixes[0]:
            bucket = page.prefixes[0]
            self._drop.append(bucket_filter(self.base, bucket))  # the sub-buckets replace it
            self.split.extendleft(reversed([f"{bucket}/{b}" for b in BUCKETS]))
        else:
            self.overfull.append(page.prefixes[0])
            self.read_buckets += 1 / 256
            self.read_messages += messages

    def filters(self, page: Page) -> list[str]:
        return [bucket_filter(self.base, p) for p in page.prefixes]
