"""The commands that start a larger program: run (the daemon), bench, demo, convert.

Only their parsers live here; each program loads when its command runs (the converter's
TensorFlow and dlib, the demo's broker), so `edgeface --help` stays quick.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from edgeface.cli.common import add_config_option, add_gallery_option, add_model_options, config_from_args


def cmd_run(args: argparse.Namespace) -> int:
    from edgeface.service.daemon import main_run

    rc = main_run(args.config)
    # A camera reader can still be inside OpenCV's decoder (its join is bounded): tearing the
    # interpreter down under it aborts in C++ ("terminate called without an active exception",
    # exit by SIGABRT instead of rc). Everything is flushed and closed by now, so leave at once.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def cmd_bench(args: argparse.Namespace) -> int:
    from edgeface.cli.bench import main_bench

    return main_bench(config_from_args(args), args.source, args.frames, args.json)


def cmd_demo(args: argparse.Namespace) -> int:
    from edgeface.cli.demo import run_demo

    return run_demo(frames=args.frames, keep=args.keep, model=args.model, broker=args.broker, verbose=args.verbose)


def cmd_convert(args: argparse.Namespace) -> int:
    # TensorFlow and dlib (the `convert` extra) load only now, inside the converter's steps.
    from edgeface.convert.cli import main as convert_main

    return convert_main(args.convert_args, prog="edgeface convert")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="run the recognition daemon (cameras in, MQTT out)",
                       description="Run the daemon: read the cameras in the config, recognise faces, publish "
                       "identities over MQTT. SIGTERM/SIGINT stop it cleanly; SIGHUP reloads config and gallery.")
    r.add_argument("--config", default="/etc/edgeface/edgeface.yaml", help="YAML config (default: %(default)s)")
    r.set_defaults(func=cmd_run)

    b = sub.add_parser("bench", help="measure the daemon's pipeline on a video file or folder of frames",
                       description="Run the daemon's own pipeline (same code, same tracking) over SOURCE as fast as "
                       "it can and report frames/s, latency p50/p95 and time per stage.")
    b.add_argument("source", metavar="SOURCE", help="video file, or folder of images used as frames in name order")
    b.add_argument("--frames", type=int, default=None, help="stop after N frames")
    b.add_argument("--json", action="store_true", help="print one JSON object with the figures and names per frame")
    b.add_argument("--threshold", type=float, default=None, help="override the model's threshold")
    add_gallery_option(b)
    add_config_option(b)
    add_model_options(b)
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("demo", help="see it work: a generated clip, an in-process broker, the MQTT messages",
                       description="Make a short clip of a public-domain face turned from -60 to +60 degrees, enrol "
                       "it, run the real daemon path with an in-process MQTT broker, and print what a subscriber "
                       "receives. Needs nothing installed beyond edgeface.")
    d.add_argument("--frames", type=int, default=30, help="frames per sweep of -60..+60 degrees (default %(default)s)")
    d.add_argument("--keep", metavar="DIR", default=None,
                   help="write the clip and gallery into DIR and keep them (default: a temporary folder)")
    d.add_argument("--model", default=None, help="embedding model (default: the shipped int8 model)")
    d.add_argument("--broker", choices=["auto", "amqtt", "mosquitto"], default="auto",
                   help="in-process amqtt, or a mosquitto executable on PATH (default: amqtt if installed)")
    d.set_defaults(func=cmd_demo)

    # Every argument after `convert`, --help included, goes to the converter's own parser: with
    # "+" as its only prefix, this subparser takes "--dat x" as plain words.
    c = sub.add_parser("convert", help="convert dlib's ResNet (or a Keras embedder) into a verified int8 TFLite model",
                       add_help=False, prefix_chars="+")
    c.add_argument("convert_args", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="the converter's options; `edgeface convert --help` lists them")
    c.set_defaults(func=cmd_convert)
