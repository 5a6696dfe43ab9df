"""Face chips for calibration and evaluation: cut by dlib (frontal detector, 5-point landmarks,
get_face_chip) as dlib's own descriptor expects them, or by edgeface's runtime (Haar detector +
landmark alignment). dlib is imported inside the functions that need it."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeface.convert.common import CHIP_PADDING, ConvertError, log
from edgeface.vision.images import IMAGE_SUFFIXES


def import_dlib() -> Any:
    try:
        import dlib
    except ImportError as e:
        raise ConvertError(f"dlib is needed to cut face chips and for the reference ({e}); "
                           f"install the convert extra: pip install '.[convert]'") from None
    return dlib


def face_models_dir() -> Path:
    """The models/ folder of the installed face_recognition_models package (dlib's .dat files)."""
    try:
        import face_recognition_models as frm
    except ImportError as e:
        raise ConvertError(f"face_recognition_models is not installed ({e}); "
                           f"install the convert extra or pass --dat PATH") from None
    return Path(frm.__path__[0]) / "models"


def list_images(folder: Path) -> list[tuple[str, Path]]:
    """(label, path) for images under folder; label = first sub-folder name ('' when flat)."""
    out = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            rel = p.relative_to(folder)
            out.append((rel.parts[0] if len(rel.parts) > 1 else "", p))
    return out


def load_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ConvertError(f"{path}: cannot read image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class ChipCutter:
    """dlib's frontal detector + 5-point landmarks + get_face_chip."""

    def __init__(self, size: int, padding: float = CHIP_PADDING):
        dlib = import_dlib()
        self.dlib = dlib
        self.size = size
        self.padding = padding
        self.detector = dlib.get_frontal_face_detector()
        self.shape_predictor = dlib.shape_predictor(str(face_models_dir() / "shape_predictor_5_face_landmarks.dat"))

    def chips(self, rgb: np.ndarray, largest_only: bool = True) -> list[np.ndarray]:
        rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
        upsample = 1 if max(rgb.shape[:2]) < 1200 else 0
        dets = list(self.detector(rgb, upsample))
        if largest_only and dets:
            dets = [max(dets, key=lambda d: d.area())]
        out = []
        for d in dets:
            shape = self.shape_predictor(rgb, d)
            out.append(np.asarray(self.dlib.get_face_chip(rgb, shape, size=self.size, padding=self.padding)))
        return out


@dataclass
class ChipSet:
    chips: np.ndarray        # (N,H,W,3) uint8 RGB
    labels: list[str]
    sources: list[str]

    @staticmethod
    def join(parts: list[ChipSet]) -> ChipSet:
        return ChipSet(np.concatenate([p.chips for p in parts]),
                       [lab for p in parts for lab in p.labels], [s for p in parts for s in p.sources])


def _folder_images(folders: list[Path]) -> list[tuple[str, Path]]:
    images = [(lab, p) for f in folders for lab, p in list_images(f)]
    if not images:
        raise ConvertError(f"no images (*.jpg/*.png/...) found under {', '.join(map(str, folders))}")
    return images


def cut_chip_set(folders: list[Path], size: int, what: str) -> ChipSet:
    """dlib-cut chips of the largest face in every photo under folders (photos without one are skipped)."""
    cutter = ChipCutter(size)
    chips, labels, sources = [], [], []
    images = _folder_images(folders)
    t0 = time.perf_counter()
    for n, (lab, p) in enumerate(images, 1):
        got = cutter.chips(load_rgb(p))
        if got:
            chips.append(got[0])
            labels.append(lab)
            sources.append(str(p))
        if n % 20 == 0 or n == len(images):
            log(f"  {what}: {n}/{len(images)} images, {len(chips)} faces ({time.perf_counter() - t0:.0f} s)")
    if not chips:
        raise ConvertError(f"dlib found no face in the {len(images)} images under {', '.join(map(str, folders))}")
    return ChipSet(np.stack(chips), labels, sources)


def runtime_chip_set(folders: list[Path], size: int) -> ChipSet:
    """Chips cut the way edgeface's runtime cuts them: its Haar detector, then five landmarks
    (edgeface.vision.landmarks.Aligner) placing the chip like dlib's get_face_chip; largest face per photo."""
    from edgeface.vision.detect import HaarDetector, largest
    from edgeface.vision.landmarks import Aligner

    detector, aligner = HaarDetector(), Aligner()
    chips, labels, sources = [], [], []
    images = _folder_images(folders)
    t0 = time.perf_counter()
    for n, (lab, p) in enumerate(images, 1):
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        det = None if bgr is None else largest(detector.detect(bgr))
        if bgr is not None and det is not None:
            chips.append(aligner.chips(bgr, [det], (size, size), CHIP_PADDING)[0])
            labels.append(lab)
            sources.append(str(p))
        if n % 20 == 0 or n == len(images):
            log(f"  runtime chips: {n}/{len(images)} images, {len(chips)} faces ({time.perf_counter() - t0:.0f} s)")
    if not chips:
        raise ConvertError("edgeface's detector found no face in the evaluation images")
    return ChipSet(np.stack(chips), labels, sources)


def augment(chips: np.ndarray, seed: int = 0) -> np.ndarray:
    """Calibration augmentation: mirror images and small rotations/scales of each chip."""
    rng = np.random.default_rng(seed)
    h, w = chips.shape[1:3]
    out = [chips, chips[:, :, ::-1]]
    for c in chips:
        for _ in range(2):
            m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-8, 8)), float(rng.uniform(0.95, 1.05)))
            out.append(cv2.warpAffine(c, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)[None])
    return np.concatenate(out).astype(np.uint8)
