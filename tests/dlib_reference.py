"""An independent, slow NCHW re-implementation of dlib's ResNet forward pass, straight from the
parsed layers (no folding, no Keras): the tests pin the Keras rebuild against it and dlib."""
from __future__ import annotations

import numpy as np

from edgeface.convert.resnet import DlibNet, LayerSpec


def _conv(x: np.ndarray, spec: LayerSpec) -> np.ndarray:
    w, b = spec.params["weights"], spec.params["bias"]
    pad = spec.padding
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, h, wd = xp.shape
    k, s = spec.size, spec.stride
    oh, ow = (h - k) // s + 1, (wd - k) // s + 1
    cols = np.empty((n, c, k, k, oh, ow), np.float32)
    for dy in range(k):
        for dx in range(k):
            cols[:, :, dy, dx] = xp[:, :, dy:dy + s * oh:s, dx:dx + s * ow:s]
    return np.einsum("nckluv,ockl->nouv", cols, w, optimize=True) + b[None, :, None, None]


def _pool(x: np.ndarray, spec: LayerSpec) -> np.ndarray:
    if spec.size == 0:
        return x.mean(axis=(2, 3), keepdims=True)
    k, s = spec.size, spec.stride
    _, _, h, wd = x.shape
    oh, ow = (h - k) // s + 1, (wd - k) // s + 1
    win = np.stack([x[:, :, dy:dy + s * oh:s, dx:dx + s * ow:s] for dy in range(k) for dx in range(k)])
    return win.max(0) if spec.kind == "max_pool" else win.mean(0)


def _add_zero_padded(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    shape = [max(a, b) for a, b in zip(x.shape, y.shape)]
    out = np.zeros(shape, np.float32)
    out[:, :x.shape[1], :x.shape[2], :x.shape[3]] += x
    out[:, :y.shape[1], :y.shape[2], :y.shape[3]] += y
    return out


def dlib_forward_numpy(net: DlibNet, chips: np.ndarray) -> np.ndarray:
    """(N, 150, 150, 3) uint8 RGB chips -> (N, 128) descriptors, as dlib computes them."""
    x = chips.astype(np.float32).transpose(0, 3, 1, 2)
    x = (x - np.array(net.input_mean, np.float32)[None, :, None, None]) / 256.0
    tags: dict[int, np.ndarray] = {}
    for spec in net.layers:
        if spec.kind == "con":
            x = _conv(x, spec)
        elif spec.kind == "affine":
            x = x * spec.params["gamma"][None, :, None, None] + spec.params["beta"][None, :, None, None]
        elif spec.kind == "relu":
            x = np.maximum(x, 0)
        elif spec.kind in ("max_pool", "avg_pool"):
            x = _pool(x, spec)
        elif spec.kind == "tag":
            tags[spec.tag] = x
        elif spec.kind == "skip":
            x = tags[spec.tag]
        elif spec.kind == "add_prev":
            x = _add_zero_padded(x, tags[spec.tag])
        elif spec.kind == "fc":
            x = x.reshape(x.shape[0], -1) @ spec.params["weights"]
    return x
