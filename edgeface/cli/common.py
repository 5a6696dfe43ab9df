"""What several commands share: the --gallery/--config/--model options and the config they make."""
from __future__ import annotations

import argparse
import sys
import time

from edgeface.cli.runtime_options import apply_runtime_options
from edgeface.config import Config, default_gallery_path, load


def utc_text(t: float) -> str:
    """A wall-clock time (time.time()) as the listings print it: "YYYY-MM-DD HH:MM:SS", UTC."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def err(msg: str) -> None:
    print(f"edgeface: {msg}", file=sys.stderr)


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (override the config's recognition section)")
    g.add_argument("--model", help="TFLite embedder with its .json sidecar beside it (default: the shipped int8 model)")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for the embedder (default: all cores)")
    g.add_argument("--delegate", default=None,
                   help="xnnpack (default CPU), cpu (reference kernels), edgetpu, or a delegate library path")
    g.add_argument("--strict", action="store_true",
                   help="fail instead of falling back to the CPU when the delegate (or OpenVINO device) cannot load")
    g.add_argument("--runtime", choices=("litert", "openvino"), default=None,
                   help="litert (default) or openvino (pip install \"edgeface[openvino]\")")
    g.add_argument("--device", default=None, type=str.upper, choices=("CPU", "GPU", "NPU", "AUTO"),
                   help="OpenVINO's device: CPU, GPU, NPU or AUTO (with --runtime openvino)")


def add_gallery_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gallery", metavar="DB", default=None,
                   help="gallery database (default: the config's gallery, else $EDGEFACE_GALLERY or "
                   f"{default_gallery_path()})")


def add_config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", default=None,
                   help="YAML config (as `edgeface run` reads it) whose gallery, model, detection and recognition "
                   "settings to use, so this command sees faces exactly as the daemon does "
                   "(default: built-in defaults)")


def add_max_pixels_option(p: argparse.ArgumentParser) -> None:
    from edgeface.vision.images import DEFAULT_MAX_PIXELS  # cv2 loads only for the commands that read photos

    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="refuse photos larger than N pixels, read from the file's header before decoding "
                   f"(default: the config's max_pixels, {DEFAULT_MAX_PIXELS}; 0: no limit). Photos over 4096 px "
                   "a side are decoded reduced.")


def config_from_args(args: argparse.Namespace) -> Config:
    """The config file named by --config (or the defaults), with the command line's overrides."""
    cfg = load(args.config) if getattr(args, "config", None) else Config()
    if getattr(args, "gallery", None):
        cfg.gallery = args.gallery
    if getattr(args, "model", None):
        cfg.model = args.model
    rec = cfg.recognition
    if getattr(args, "threshold", None) is not None:
        rec.threshold = args.threshold
    if getattr(args, "threads", None):
        rec.num_threads = args.threads
    if getattr(args, "delegate", None):
        rec.delegate, rec.strict = args.delegate, args.strict
    if getattr(args, "runtime", None) or getattr(args, "device", None):
        apply_runtime_options(cfg, args)
    if getattr(args, "max_pixels", None) is not None:
        cfg.max_pixels = args.max_pixels
    return cfg


def gallery_path(args: argparse.Namespace) -> str:
    """--gallery, else the --config file's gallery, else the default."""
    return str(config_from_args(args).gallery)
