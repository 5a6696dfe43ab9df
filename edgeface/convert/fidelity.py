"""How close the converted models are to their reference: embedding cosines, same/different
person verification, the thresholds the runtime uses, size and latency, and the report table."""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeface.convert.chips import ChipSet
from edgeface.convert.common import log
from edgeface.recognition.embed import dequantize, quantize
from edgeface.recognition.match import unit_rows

# Acceptance limits of issue 2 (dlib path); --keras uses the same limits against the Keras model.
MIN_FLOAT_MEAN_COS = 0.9999
MIN_INT8_MEAN_COS = 0.99
MIN_INT8_MIN_COS = 0.97
MAX_INT8_ACC_DROP = 1.0  # percentage points below the reference


def _interpreter(model_bytes: bytes, threads: int = 1) -> Any:
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=model_bytes, num_threads=threads)
    it.allocate_tensors()
    return it


def output_dim(model_bytes: bytes) -> int:
    return int(_interpreter(model_bytes).get_output_details()[0]["shape"][-1])


class TFLiteRunner:
    """One face at a time through a TFLite model held in memory, quantised as edgeface.recognition.embed does."""

    def __init__(self, model_bytes: bytes, threads: int = 1):
        self.it = _interpreter(model_bytes, threads)
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]

    def embed_one(self, chip: np.ndarray) -> np.ndarray:
        x = chip[None]
        if self.inp["dtype"] == np.float32:
            x = x.astype(np.float32)
        elif self.inp["dtype"] != np.uint8:
            x = quantize(x, self.inp["quantization"], self.inp["dtype"])
        self.it.set_tensor(self.inp["index"], x)
        self.it.invoke()
        return dequantize(self.it.get_tensor(self.out["index"])[0], self.out["quantization"])

    def embed(self, chips: np.ndarray) -> np.ndarray:
        return np.stack([self.embed_one(c) for c in chips])

    def time_once(self, chip: np.ndarray) -> float:
        t0 = time.perf_counter()
        self.embed_one(chip)
        return time.perf_counter() - t0


def latencies_ms(runners: list[TFLiteRunner], chip: np.ndarray, runs: int = 100) -> list[float]:
    """Median single-face latency of each runner; runs interleave so that load from other
    processes on a shared machine hits every model alike."""
    for r in runners:
        for _ in range(3):
            r.embed_one(chip)
    times = [[r.time_once(chip) for r in runners] for _ in range(runs)]
    return [float(np.median(col) * 1000) for col in zip(*times)]


def integer_only_report(model_bytes: bytes) -> dict[str, Any]:
    """Tensor dtypes and op names of a model as stored (no delegate rewriting the graph)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    it = Interpreter(model_content=model_bytes,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    dtypes: dict[str, int] = {}
    for t in it.get_tensor_details():
        dtypes[np.dtype(t["dtype"]).name] = dtypes.get(np.dtype(t["dtype"]).name, 0) + 1
    ops = sorted({op["op_name"] for op in it._get_ops_details()}) if hasattr(it, "_get_ops_details") else []
    return {"tensor_dtypes": dtypes, "ops": ops,
            "input_dtype": np.dtype(it.get_input_details()[0]["dtype"]).name,
            "output_dtype": np.dtype(it.get_output_details()[0]["dtype"]).name,
            "output_quantization": [float(q) for q in it.get_output_details()[0]["quantization"]]}


# ------------------------------------------------------------------------- scores and thresholds


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(unit_rows(a) * unit_rows(b), axis=1)


def pair_scores(emb: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(cosine similarity, same person?) for every pair of embeddings."""
    e = unit_rows(emb)
    sim = e @ e.T
    iu = np.triu_indices(len(labels), 1)
    lab = np.array(labels)
    return sim[iu], (lab[:, None] == lab[None, :])[iu]


def verification_accuracy(sim: np.ndarray, same: np.ndarray, threshold: float) -> dict[str, float]:
    pred = sim >= threshold
    tpr = float(np.mean(pred[same])) if same.any() else float("nan")
    tnr = float(np.mean(~pred[~same])) if (~same).any() else float("nan")
    return {"accuracy": float(np.mean(pred == same)) * 100, "balanced_accuracy": (tpr + tnr) / 2 * 100,
            "true_accept": tpr * 100, "true_reject": tnr * 100}


def choose_threshold(sim: np.ndarray, same: np.ndarray) -> tuple[float, tuple[float, float]]:
    """Cosine threshold maximising balanced accuracy: the middle of the best plateau.

    Balanced accuracy (mean of same-person and different-person accuracy) because different
    pairs outnumber same pairs about 4:1; plain accuracy would favour rejecting everyone.
    Returns (threshold, (plateau low, plateau high)).
    """
    cand = np.unique(np.round(sim, 4))
    if cand.size < 2:
        return 0.5, (0.5, 0.5)
    grid = np.concatenate([[cand[0] - 1e-3], (cand[:-1] + cand[1:]) / 2, [cand[-1] + 1e-3]])
    scores = np.array([verification_accuracy(sim, same, t)["balanced_accuracy"] for t in grid])
    best = np.flatnonzero(scores >= scores.max() - 1e-9)
    lo, hi = float(grid[best[0]]), float(grid[best[-1]])
    return float(np.round((lo + hi) / 2, 4)), (round(lo, 4), round(hi, 4))


def open_set_threshold(emb: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """The identification threshold: a gallery holds many photos per person and a face takes the
    best of them, so an unknown face gets many chances to look like someone. For every chip,
    its best similarity to any chip of another identity is what it would score if its own
    person were not enrolled; the threshold is the 98th percentile of those, to 0.005 (the very
    top is set by web photos that show someone else beside the named person). Also reports
    how many faces still find their own person above it.
    """
    lab = np.asarray(labels)
    e = unit_rows(emb)  # an all-zero embedding (a collapsed int8 output) scores 0, not NaN
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    same = lab[:, None] == lab[None, :]
    impostor = np.where(same, -np.inf, sim).max(axis=1)
    genuine = np.where(same, sim, -np.inf).max(axis=1)
    threshold = round(float(np.percentile(impostor, 98)) * 200) / 200
    return {"threshold": threshold, "impostor_best_max": float(impostor.max()),
            "impostor_best_percentiles": {str(q): float(np.percentile(impostor, q)) for q in (90, 95, 98, 99)},
            "genuine_identified_at_threshold": float((genuine >= threshold).mean())}


def equal_error_threshold(sim: np.ndarray, same: np.ndarray) -> float:
    """Cosine threshold where false accepts and false rejects are (nearest to) equally frequent."""
    grid = np.unique(np.round(sim, 4))
    gap = [abs(np.mean(sim[same] >= t) - np.mean(sim[~same] < t)) for t in grid]
    return round(float(grid[int(np.argmin(gap))]), 4)


# ------------------------------------------------------------------------- the evaluation


@dataclass
class Reference:
    """What the converted models are measured against."""
    name: str                                        # 'dlib' or 'keras'
    embed: Callable[[np.ndarray], np.ndarray]        # chips -> (N, D) float
    native_distance: float | None = None             # the reference's own euclidean threshold, if any


def fmt_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _stats(cos: np.ndarray) -> dict[str, float]:
    return {"mean": float(cos.mean()), "min": float(cos.min())}


def _verification(emb: dict[str, np.ndarray], labels: list[str], ref: Reference) -> dict[str, Any]:
    """Pair verification of each embedding set at the threshold chosen on the reference's pairs."""
    sims = {n: pair_scores(e, labels) for n, e in emb.items()}
    same = sims["reference"][1]
    threshold, plateau = choose_threshold(sims["reference"][0], same)
    acc = {n: verification_accuracy(s, same, threshold) for n, (s, _) in sims.items()}
    ver: dict[str, Any] = {"pairs": int(same.size), "same_pairs": int(same.sum()),
                           "identities": len(set(labels)), "threshold": threshold,
                           "threshold_plateau": list(plateau),
                           "equal_error_threshold": equal_error_threshold(sims["reference"][0], same), **acc}
    if ref.native_distance is not None:
        # The reference's own rule (dlib: euclidean distance < 0.6 on raw descriptors).
        e = emb["reference"]
        d = np.linalg.norm(e[:, None] - e[None], axis=-1)[np.triu_indices(len(labels), 1)]
        ver["reference_native"] = {"rule": f"euclidean distance < {ref.native_distance}",
                                   **verification_accuracy(-d, same, -ref.native_distance)}
    return ver


def _checks(fid: dict[str, Any]) -> dict[str, bool]:
    ver = fid.get("verification")
    return {"float_mean_cosine": fid["float_vs_reference_cosine"]["mean"] >= MIN_FLOAT_MEAN_COS,
            "int8_mean_cosine": fid["int8_vs_reference_cosine"]["mean"] >= MIN_INT8_MEAN_COS,
            "int8_min_cosine": fid["int8_vs_reference_cosine"]["min"] >= MIN_INT8_MIN_COS,
            "int8_verification_within_1_point": ver is None or ver["int8"]["balanced_accuracy"]
            >= ver["reference"]["balanced_accuracy"] - MAX_INT8_ACC_DROP}


def evaluate(float_bytes: bytes, int8_bytes: bytes, ref: Reference, eval_set: ChipSet,
             threads: int, held_out: np.ndarray | None = None) -> tuple[dict[str, Any], str, float]:
    """(fidelity record for the sidecar, report table, pair threshold or nan for one identity)."""
    log(f"[eval] reference ({ref.name}) embeddings of {len(eval_set.chips)} chips ...")
    ref_emb = ref.embed(eval_set.chips)
    log("[eval] float32 TFLite embeddings ...")
    f_run = TFLiteRunner(float_bytes, threads)
    f_emb = f_run.embed(eval_set.chips)
    log("[eval] int8 TFLite embeddings ...")
    q_run = TFLiteRunner(int8_bytes, threads)
    q_emb = q_run.embed(eval_set.chips)
    cos_q = cosines(q_emb, ref_emb)
    fid: dict[str, Any] = {
        "chips": len(eval_set.chips),
        "float_vs_reference_cosine": _stats(cosines(f_emb, ref_emb)),
        "int8_vs_reference_cosine": _stats(cos_q),
        "int8_vs_float_cosine": _stats(cosines(q_emb, f_emb)),
    }
    if held_out is not None and held_out.any():
        fid["int8_vs_reference_cosine_held_out"] = {"chips": int(held_out.sum()), **_stats(cos_q[held_out])}
    threshold = float("nan")
    if len(set(eval_set.labels)) >= 2:
        emb = {"reference": ref_emb, "float": f_emb, "int8": q_emb}
        fid["verification"] = _verification(emb, eval_set.labels, ref)
        threshold = fid["verification"]["threshold"]
        fid["identification"] = open_set_threshold(q_emb, eval_set.labels)
    log("[eval] latency (single face, median of 100 interleaved runs) ...")
    lat_f, lat_q = latencies_ms([f_run, q_run], eval_set.chips[0])
    fid["latency_ms"] = {"float32": lat_f, "int8": lat_q, "threads": threads, "runtime": "ai_edge_litert (XNNPACK)",
                         "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)}
    fid["size_bytes"] = {"float32": len(float_bytes), "int8": len(int8_bytes)}
    fid["checks"] = _checks(fid)
    return fid, fmt_table(report_rows(fid, ref)), threshold


def _pass(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _verification_rows(fid: dict[str, Any], ref: Reference) -> list[tuple[str, ...]]:
    R, v, ok = ref.name, fid["verification"], fid["checks"]["int8_verification_within_1_point"]
    rows: list[tuple[str, ...]] = []
    for n, label in (("reference", R), ("float", "float32 TFLite"), ("int8", "int8 TFLite")):
        a = v[n]
        rows.append((f"verification, {label} (balanced acc / acc)",
                     f"{a['balanced_accuracy']:.2f}% / {a['accuracy']:.2f}%",
                     f">= {R} - {MAX_INT8_ACC_DROP:g} pt" if n == "int8" else "", _pass(ok) if n == "int8" else ""))
    if "reference_native" in v:
        a = v["reference_native"]
        rows.append((f"verification, {R} own rule (euclid < {ref.native_distance:g})",
                     f"{a['balanced_accuracy']:.2f}% / {a['accuracy']:.2f}%", "", ""))
    o = fid["identification"]
    rows += [("pairs (same / total), identities", f"{v['same_pairs']} / {v['pairs']}, {v['identities']}", "", ""),
             (f"cosine threshold (chosen on {R} pairs)", f"{v['threshold']:.4f}",
              f"EER point {v['equal_error_threshold']:.4f}", ""),
             ("identification threshold (p98 of held-out best)", f"{o['threshold']:.4f}",
              f"found own person {o['genuine_identified_at_threshold'] * 100:.1f}%", "")]
    return rows


def report_rows(fid: dict[str, Any], ref: Reference) -> list[tuple[str, ...]]:
    """The fidelity table: measure, value, limit, check."""
    R, ok = ref.name, fid["checks"]
    cf, cq = fid["float_vs_reference_cosine"], fid["int8_vs_reference_cosine"]
    rows: list[tuple[str, ...]] = [
        ("measure", "value", "limit", "check"),
        (f"float32 TFLite vs {R}: mean cosine", f"{cf['mean']:.6f}", f">= {MIN_FLOAT_MEAN_COS}",
         _pass(ok["float_mean_cosine"])),
        (f"float32 TFLite vs {R}: min cosine", f"{cf['min']:.6f}", "", ""),
        (f"int8 TFLite vs {R}: mean cosine", f"{cq['mean']:.4f}", f">= {MIN_INT8_MEAN_COS}",
         _pass(ok["int8_mean_cosine"])),
        (f"int8 TFLite vs {R}: min cosine", f"{cq['min']:.4f}", f">= {MIN_INT8_MIN_COS}", _pass(ok["int8_min_cosine"]))]
    if "int8_vs_reference_cosine_held_out" in fid:
        h = fid["int8_vs_reference_cosine_held_out"]
        rows.append((f"  same, {h['chips']} chips not used in calibration: mean / min",
                     f"{h['mean']:.4f} / {h['min']:.4f}", "", ""))
    if "verification" in fid:
        rows += _verification_rows(fid, ref)
    size, lat = fid["size_bytes"], fid["latency_ms"]
    rows += [("model size float32 / int8", f"{size['float32'] / 1e6:.2f} MB / {size['int8'] / 1e6:.2f} MB",
              f"ratio {size['float32'] / size['int8']:.2f}x", ""),
             (f"latency 1 face float32 / int8 ({lat['threads']} thread)",
              f"{lat['float32']:.2f} ms / {lat['int8']:.2f} ms", f"speed-up {lat['float32'] / lat['int8']:.2f}x", ""),
             ("  machine load while timing (1-min load avg / cpus)",
              f"{lat['load_average_1min']:.2f} / {lat['cpus']}", "", "")]
    return rows


def evaluate_runtime_chips(int8_bytes: bytes, ref: Reference, chip_set: ChipSet, threshold: float,
                           threads: int) -> tuple[dict[str, Any], str]:
    """int8 fidelity and verification on chips cut by edgeface's runtime (chips.runtime_chip_set)."""
    ref_emb = ref.embed(chip_set.chips)
    q_emb = TFLiteRunner(int8_bytes, threads).embed(chip_set.chips)
    cos_q = cosines(q_emb, ref_emb)
    res: dict[str, Any] = {"chips": len(chip_set.chips), "int8_vs_reference_cosine": _stats(cos_q)}
    rows: list[tuple[str, ...]] = [("measure (edgeface runtime chips: Haar + landmark alignment)", "value"),
            (f"int8 TFLite vs {ref.name}: mean / min cosine", f"{cos_q.mean():.4f} / {cos_q.min():.4f}")]
    if len(set(chip_set.labels)) >= 2 and not math.isnan(threshold):
        for n, e in (("reference", ref_emb), ("int8", q_emb)):
            sim, same = pair_scores(e, chip_set.labels)
            res[n] = verification_accuracy(sim, same, threshold)
            res[n]["best_threshold"] = choose_threshold(sim, same)[0]
            label = ref.name if n == "reference" else "int8 TFLite"
            rows.append((f"verification at {threshold:.4f}, {label} (balanced / acc)",
                         f"{res[n]['balanced_accuracy']:.2f}% / {res[n]['accuracy']:.2f}%"))
        rows.append((f"best threshold on these chips ({ref.name} / int8)",
                     f"{res['reference']['best_threshold']:.4f} / {res['int8']['best_threshold']:.4f}"))
    rows.append(("faces found", f"{len(chip_set.chips)}"))
    return res, fmt_table(rows)
