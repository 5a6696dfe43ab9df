"""dlib's ResNet face descriptor (dlib_face_recognition_resnet_model_v1.dat): the expected
architecture, the parser (dlib/dnn/{core,layers,input,loss}.h) and its consistency checks."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeface.convert.dlib_format import DlibFormatError, DlibReader, open_dlib_file

DLIB_DAT_NAME = "dlib_face_recognition_resnet_model_v1.dat"


# Layer kinds of the expected architecture, listed from the network output inwards, exactly as
# dlib's template expands (and serializes) them.
@dataclass
class LayerSpec:
    kind: str                     # con, affine, relu, max_pool, avg_pool, add_prev, tag, skip, fc
    num_filters: int = 0          # con / fc outputs
    size: int = 0                 # kernel / pool window (0 = whole image for avg_pool_everything)
    stride: int = 1
    tag: int = 0                  # tag / skip / add_prev id
    params: dict[str, np.ndarray] = field(default_factory=dict)  # filled by the parser

    @property
    def padding(self) -> int:
        """dlib's default padding for con_ and pool layers: half the window when stride is 1."""
        return 0 if self.stride != 1 else self.size // 2

    def describe(self) -> str:
        if self.kind == "con":
            return f"con<{self.num_filters},{self.size},{self.size},{self.stride},{self.stride}>"
        if self.kind in ("max_pool", "avg_pool"):
            if self.size == 0:
                return "avg_pool_everything"
            return f"{self.kind}<{self.size},{self.size},{self.stride},{self.stride}>"
        if self.kind == "fc":
            return f"fc_no_bias<{self.num_filters}>"
        if self.kind in ("tag", "skip", "add_prev"):
            return f"{self.kind}{self.tag}"
        return self.kind


def _block(n: int, stride: int) -> list[LayerSpec]:
    # block = affine<con<N,3,3,1,1,relu<affine<con<N,3,3,stride,stride,SUBNET>>>>>
    return [LayerSpec("affine"), LayerSpec("con", n, 3, 1), LayerSpec("relu"),
            LayerSpec("affine"), LayerSpec("con", n, 3, stride)]


def _ares(n: int) -> list[LayerSpec]:
    # relu<add_prev1<block<N,1,tag1<SUBNET>>>>
    return [LayerSpec("relu"), LayerSpec("add_prev", tag=1)] + _block(n, 1) + [LayerSpec("tag", tag=1)]


def _ares_down(n: int) -> list[LayerSpec]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,2,tag1<SUBNET>>>>>>>
    return ([LayerSpec("relu"), LayerSpec("add_prev", tag=2), LayerSpec("avg_pool", 0, 2, 2),
             LayerSpec("skip", tag=1), LayerSpec("tag", tag=2)]
            + _block(n, 2) + [LayerSpec("tag", tag=1)])


def dlib_resnet_v1_architecture() -> list[LayerSpec]:
    """anet_type of dlib/examples/dnn_face_recognition_ex.cpp, output first."""
    layers = [LayerSpec("fc", 128), LayerSpec("avg_pool", 0, 0, 1)]  # avg_pool<0,0,1,1>
    layers += _ares_down(256)                                    # alevel0
    layers += _ares(256) + _ares(256) + _ares_down(256)          # alevel1
    layers += _ares(128) + _ares(128) + _ares_down(128)          # alevel2
    layers += _ares(64) + _ares(64) + _ares(64) + _ares_down(64)  # alevel3
    layers += _ares(32) + _ares(32) + _ares(32)                  # alevel4
    layers += [LayerSpec("max_pool", 0, 3, 2), LayerSpec("relu"), LayerSpec("affine"),
               LayerSpec("con", 32, 7, 2)]
    return layers


@dataclass
class DlibNet:
    path: Path
    layers: list[LayerSpec]            # input-side first (evaluation order)
    input_mean: tuple[float, float, float]
    input_size: tuple[int, int]        # (rows, cols)
    loss: dict[str, object]
    parse_seconds: float

    @property
    def num_params(self) -> int:
        return sum(int(v.size) for layer in self.layers for v in layer.params.values())


def summarize(net: DlibNet) -> str:
    kinds: dict[str, int] = {}
    for layer in net.layers:
        kinds[layer.kind] = kinds.get(layer.kind, 0) + 1
    return (f"{net.path.name}: {len(net.layers)} layers ({', '.join(f'{v} {k}' for k, v in kinds.items())}), "
            f"{net.num_params:,} parameters, input {net.input_size[1]}x{net.input_size[0]} RGB, "
            f"mean {tuple(round(m, 3) for m in net.input_mean)}, loss {net.loss['type']}; "
            f"parsed in {net.parse_seconds:.2f} s")


# ------------------------------------------------------------------------- per-layer readers


@dataclass
class _Layer:
    """One add_layer's `details` as the parser meets it: where, what was expected, what was found."""
    r: DlibReader
    spec: LayerSpec
    name: str       # the serialized layer type, e.g. "con_6"
    where: str
    start: int

    def mismatch(self, found: str) -> DlibFormatError:
        return self.r.fail(f"not dlib_face_recognition_resnet_model_v1: {self.where} but found {found}", self.start)

    def expect_name(self, *names: str) -> None:
        if self.name not in names:
            raise self.mismatch(f"layer type {self.name!r}")


def _read_con(layer: _Layer) -> None:
    r, spec = layer.r, layer.spec
    layer.expect_name("con_4", "con_5", "con_6")
    params = r.tensor("con params")
    num_filters = r.int("num_filters")
    nr, nc = r.int("nr"), r.int("nc")
    sy, sx = r.int("stride_y"), r.int("stride_x")
    py, px = r.int("padding_y"), r.int("padding_x")
    filt = r.alias_tensor("con filters")
    bias = r.alias_tensor("con biases")
    r.multipliers()
    use_bias = r.bool("use_bias") if layer.name in ("con_5", "con_6") else True
    if layer.name == "con_6" and r.bool("use_relu"):
        raise r.fail(f"{layer.where}: fused relu in con_ is not supported")
    got = (num_filters, nr, nc, sy, sx, py, px)
    want = (spec.num_filters, spec.size, spec.size, spec.stride, spec.stride, spec.padding, spec.padding)
    if got != want:
        raise layer.mismatch(f"con (filters,nr,nc,stride_y,stride_x,padding_y,padding_x)={got}, wanted {want}")
    nf, k = filt[0], filt[1]
    if filt != (num_filters, k, nr, nc) or bias != (1, num_filters, 1, 1):
        raise layer.mismatch(f"con filter/bias shapes {filt}/{bias}")
    flat = params.reshape(-1)
    n_w = nf * k * nr * nc
    expected = n_w + (num_filters if use_bias else 0)
    if flat.size != expected:
        raise layer.mismatch(f"con with {flat.size} parameters, expected {expected}")
    spec.params["weights"] = flat[:n_w].reshape(nf, k, nr, nc)  # OIHW, cross-correlation
    spec.params["bias"] = flat[n_w:].copy() if use_bias else np.zeros(num_filters, np.float32)


def _read_affine(layer: _Layer) -> None:
    if layer.name == "bn_con2":
        _read_bn_as_affine(layer)
        return
    r, spec = layer.r, layer.spec
    layer.expect_name("affine_", "affine_2")
    params = r.tensor("affine params")
    g = r.alias_tensor("affine gamma")
    b = r.alias_tensor("affine beta")
    mode = r.int("affine mode")
    if layer.name == "affine_2" and r.bool("disabled"):
        raise r.fail(f"{layer.where}: disabled affine layer is not supported")
    if mode != 0 or g[2:] != (1, 1) or g != b:
        raise layer.mismatch(f"affine in mode {mode} with gamma {g} (expected CONV_MODE, per channel)")
    flat = params.reshape(-1)
    c = g[1]
    if flat.size != 2 * c:
        raise layer.mismatch(f"affine with {flat.size} parameters for {c} channels")
    spec.params["gamma"], spec.params["beta"] = flat[:c].copy(), flat[c:].copy()


def _read_bn_as_affine(layer: _Layer) -> None:
    # dlib converts a stored batch-norm into affine_ on load; do the same.
    r, spec = layer.r, layer.spec
    params = r.tensor("bn params")
    g = r.alias_tensor("bn gamma")
    r.alias_tensor("bn beta")
    r.tensor("bn means")
    r.tensor("bn invstds")
    running_means = r.tensor("bn running_means").reshape(-1)
    running_vars = r.tensor("bn running_variances").reshape(-1)
    r.int("bn num_updates")
    r.int("bn running_stats_window_size")
    r.multipliers()
    eps = r.float("bn eps")
    c = g[1]
    flat = params.reshape(-1)
    gamma = flat[:c] / np.sqrt(running_vars + eps)
    spec.params["gamma"] = gamma.astype(np.float32)
    spec.params["beta"] = (flat[c:2 * c] - gamma * running_means).astype(np.float32)


def _read_relu(layer: _Layer) -> None:
    layer.expect_name("relu_", "relu_2")
    if layer.name == "relu_2" and layer.r.bool("disabled"):
        raise layer.r.fail(f"{layer.where}: disabled relu is not supported")


def _read_pool(layer: _Layer) -> None:
    spec = layer.spec
    layer.expect_name(f"{spec.kind}_2")
    got = tuple(layer.r.int(f) for f in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"))
    want = (spec.size, spec.size, spec.stride, spec.stride, spec.padding, spec.padding)
    if got != want:
        raise layer.mismatch(f"{spec.kind} (nr,nc,stride_y,stride_x,padding_y,padding_x)={got}, wanted {want}")


def _read_add_prev(layer: _Layer) -> None:
    layer.expect_name("add_prev_")


def _read_fc(layer: _Layer) -> None:
    r, spec = layer.r, layer.spec
    layer.expect_name("fc_2", "fc_3")
    num_outputs, num_inputs = r.int("num_outputs"), r.int("num_inputs")
    params = r.tensor("fc params")
    w = r.alias_tensor("fc weights")
    r.alias_tensor("fc biases")
    bias_mode = r.int("fc bias_mode")
    r.multipliers()
    if layer.name == "fc_3":
        r.bool("use_bias")
    if bias_mode != 1 or num_outputs != spec.num_filters:
        raise layer.mismatch(f"fc with {num_outputs} outputs, bias_mode {bias_mode} "
                             f"(want fc_no_bias<{spec.num_filters}>)")
    flat = params.reshape(-1)
    if w[:2] != (num_inputs, num_outputs) or flat.size != num_inputs * num_outputs:
        raise layer.mismatch(f"fc weights {w} with {flat.size} parameters")
    spec.params["weights"] = flat.reshape(num_inputs, num_outputs)  # output = x @ W


# Layer kind -> reader of its `details`; tags and skips serialize no details.
LAYER_READERS: dict[str, Callable[[_Layer], None]] = {
    "con": _read_con, "affine": _read_affine, "relu": _read_relu, "max_pool": _read_pool,
    "avg_pool": _read_pool, "add_prev": _read_add_prev, "fc": _read_fc,
}


def _read_layer_details(r: DlibReader, spec: LayerSpec, index: int) -> None:
    """Parse the `details` object of one add_layer and check it against spec."""
    start = r.pos
    name = r.string("layer type")
    LAYER_READERS[spec.kind](_Layer(r, spec, name, f"layer {index} (expected {spec.describe()})", start))


# ------------------------------------------------------------------------- the whole file


def _read_loss(r: DlibReader) -> dict[str, object]:
    try:
        r.version("add_loss_layer", (1,))
        start = r.pos
        loss_name = r.string("loss layer type", max_len=64)
    except DlibFormatError as e:
        raise DlibFormatError(f"{e} -- not a dlib deep network file (a shape predictor or another "
                              f"dlib object?); expected {DLIB_DAT_NAME}") from None
    if loss_name not in ("loss_metric_", "loss_metric_2"):
        raise r.fail(f"this is a dlib network with loss layer {loss_name!r} (e.g. the mmod face detector is "
                     f"'loss_mmod_'), not the face recognition ResNet ('loss_metric_')", start)
    if loss_name == "loss_metric_2":
        return {"type": loss_name, "margin": r.float("loss margin"),
                "distance_threshold": r.float("loss dist_thresh")}
    return {"type": loss_name, "margin": 0.1, "distance_threshold": 0.75}


def _read_versions(r: DlibReader, arch: list[LayerSpec]) -> list[int]:
    """Headers, outermost first: add_layer -> version, tag/skip -> version 1."""
    versions = []
    for i, spec in enumerate(arch):
        if spec.kind in ("tag", "skip"):
            versions.append(r.version(f"layer {i} ({spec.describe()})", (1,)))
        elif i == len(arch) - 1:
            versions.append(r.version(f"layer {i} ({spec.describe()}, on the input)", (2, 3)))
        else:
            versions.append(r.version(f"layer {i} ({spec.describe()})", (1, 2)))
    return versions


def _read_input(r: DlibReader) -> tuple[tuple[float, float, float], tuple[int, int]]:
    # The add_layer on the input layer serialized the input layer first.
    start = r.pos
    input_name = r.string("input layer type", max_len=64)
    if input_name != "input_rgb_image_sized":
        raise r.fail(f"not dlib_face_recognition_resnet_model_v1: expected input_rgb_image_sized, "
                     f"found {input_name!r}", start)
    mean = (r.float("avg_red"), r.float("avg_green"), r.float("avg_blue"))
    rows, cols = r.int("input rows"), r.int("input cols")
    if (rows, cols) != (150, 150):
        raise r.fail(f"not dlib_face_recognition_resnet_model_v1: input is {rows}x{cols}, expected 150x150", start)
    return mean, (rows, cols)


def _read_details(r: DlibReader, arch: list[LayerSpec], versions: list[int]) -> None:
    """Details in evaluation order (input side first); each add_layer's trailer follows its
    details (dlib/dnn/core.h add_layer::serialize)."""
    for i in range(len(arch) - 1, -1, -1):
        spec = arch[i]
        if spec.kind in ("tag", "skip"):
            continue
        _read_layer_details(r, spec, i)
        r.bool("this_layer_setup_called")
        r.bool("gradient_input_is_stale")
        r.bool("get_output_and_gradient_input_disabled")
        r.tensor("x_grad")
        r.tensor("cached_output")
        if i == len(arch) - 1:  # add_layer on the input layer
            r.tensor("grad_final")
            if versions[i] >= 3:
                r.int("_sample_expansion_factor", 4, signed=False)
        elif versions[i] >= 2:
            r.tensor("params_grad")


def parse_dlib_resnet(path: Path) -> DlibNet:
    """Parse dlib_face_recognition_resnet_model_v1.dat; raise DlibFormatError on anything else."""
    t0 = time.perf_counter()
    r = open_dlib_file(Path(path), "a dlib network file")
    loss = _read_loss(r)
    arch = dlib_resnet_v1_architecture()
    versions = _read_versions(r, arch)
    mean, size = _read_input(r)
    _read_details(r, arch, versions)
    r.check_end("network")
    layers = list(reversed(arch))
    _check_channels(r.path, layers)
    return DlibNet(r.path, layers, mean, size, loss, time.perf_counter() - t0)


def _check_channels(path: Path, layers: list[LayerSpec]) -> None:
    """Every conv/fc must take as many input channels as the layers before it produce."""
    channels, tags = 3, {}
    for i, spec in enumerate(layers):
        if spec.kind == "con":
            got = spec.params["weights"].shape[1]
            if got != channels:
                raise DlibFormatError(f"{path}: layer {spec.describe()} (#{i} from the input) takes {got} input "
                                      f"channels but receives {channels}")
            channels = spec.num_filters
        elif spec.kind == "affine" and spec.params["gamma"].size != channels:
            raise DlibFormatError(f"{path}: affine layer #{i} has {spec.params['gamma'].size} channels, "
                                  f"expected {channels}")
        elif spec.kind == "tag":
            tags[spec.tag] = channels
        elif spec.kind == "skip":
            channels = tags[spec.tag]
        elif spec.kind == "add_prev":
            channels = max(channels, tags[spec.tag])
        elif spec.kind == "fc" and spec.params["weights"].shape[0] != channels:
            raise DlibFormatError(f"{path}: fc layer takes {spec.params['weights'].shape[0]} inputs, "
                                  f"the pooled features have {channels}")
