"""The `edgeface` command: the parser's wiring. Each command group lives in its own module."""
from __future__ import annotations

import argparse
import logging
import sys

from edgeface import __version__, exitcodes
from edgeface.cli import enroll, events, fleet, gallery, identify, runners
from edgeface.cli.common import err
from edgeface.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeface",
        description="Real-time face recognition for small devices: finds faces at any roll from -60 to +60 "
        "degrees, names them from a local gallery, and publishes identities over MQTT.",
        epilog="Start with `edgeface demo`. Enrol people with `edgeface enroll`, then run the daemon with "
        "`edgeface run --config /etc/edgeface/edgeface.yaml`.",
    )
    p.add_argument("--version", action="version", version=f"edgeface {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    enroll.add_parser(sub)
    identify.add_parser(sub)
    gallery.add_parser(sub)
    events.add_parser(sub)
    fleet.add_parser(sub)
    runners.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # the model's and gallery's errors load with them, when a command needs them
    from edgeface.recognition.embed import ModelError
    from edgeface.store.gallery import GalleryError

    try:
        return int(args.func(args))
    except ConfigError as e:
        err(str(e))
        return exitcodes.USAGE
    except (ModelError, GalleryError) as e:
        err(str(e))
        return exitcodes.FAIL
    except KeyboardInterrupt:
        return exitcodes.INTERRUPTED
    except BrokenPipeError:  # `edgeface identify ... | head`
        return exitcodes.OK
