"""--runtime and --device: choose the embedder's runtime from the command line (bench, identify, enroll)."""
from __future__ import annotations

import argparse
from dataclasses import replace
from typing import cast

from edgeface.config import Config, ConfigError
from edgeface.config.recognition import OPENVINO_DEVICES, RUNTIMES, OpenVinoDevice, Runtime


def apply_runtime_options(cfg: Config, args: argparse.Namespace) -> None:
    """Set cfg.recognition's runtime and device from --runtime/--device, checked as the config
    file's keys are. --runtime openvino sets aside a delegate the config file names (delegates are
    LiteRT's), but not one given with --delegate on the same command line."""
    rec = cfg.recognition
    runtime = args.runtime or rec.runtime
    device = (args.device or ("CPU" if runtime == "litert" else rec.device)).upper()
    if runtime not in RUNTIMES or device not in OPENVINO_DEVICES:  # argparse's choices already say so
        raise ConfigError(f"--runtime {runtime} --device {device}: runtime is one of {', '.join(RUNTIMES)}, "
                          f"device one of {', '.join(OPENVINO_DEVICES)}")
    delegate = rec.delegate
    if runtime == "openvino" and not getattr(args, "delegate", None):
        delegate = None
    try:
        cfg.recognition = replace(rec, runtime=cast(Runtime, runtime), device=cast(OpenVinoDevice, device),
                                  delegate=delegate, strict=rec.strict or bool(getattr(args, "strict", False)))
    except ValueError as e:
        raise ConfigError("; ".join(f"--runtime/--device: {line}" for line in str(e).splitlines())) from None
