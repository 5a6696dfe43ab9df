"""One helper for the config dataclasses' __post_init__ checks.

Each rule's message starts with its field's name ("keepalive must be 1..65535"); the config
loader uses that first word to report the problem at the field's own key path and line, and
lists every broken rule at once rather than only the first.
"""
from __future__ import annotations


def require(*rules: tuple[bool, str]) -> None:
    """Raise one ValueError listing (one per line) the message of every rule whose check is False."""
    broken = [message for ok, message in rules if not ok]
    if broken:
        raise ValueError("\n".join(broken))


def within(value: float, low: float, high: float) -> bool:
    """low <= value <= high (False for NaN, which compares False with everything)."""
    return low <= value <= high
