"""Matching embeddings against the gallery: pure functions over numpy arrays, no I/O.

The embedder already places faces of one person close together, so the model on top stays
simple: cosine similarity to every enrolled embedding, and the best person is named only if
the open-set rule (OpenSetRule) lets them through, else the face is unknown (None).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

METHODS = ("nearest", "centroid", "top2")


@dataclass(frozen=True)
class OpenSetRule:
    """When the best person's score names a face. Measured in models/README.md ("Open set").

    A stranger is compared with every enrolled person, so the more people enrolled, the more
    chances one of them scores high: the threshold rises with the log of the gallery's size
    (an exponential tail of impostor scores moves its maximum by log(people)). A person whom
    other enrolled people's photos already score high against (a look-alike, a photo showing
    two people) gets a threshold just above those scores, up to ``crowd_cap`` more: an enrolled
    look-alike is never named as them. The best person must also beat the second best by ``margin``.
    """

    threshold: float  # for a gallery of reference_people people
    reference_people: int = 5
    # added per e-fold of people past reference_people: measured on LFW galleries of 5-40 people,
    # where it holds the share of strangers left unknown flat (0.985-0.986; 0.986 -> 0.975 at 0.005)
    growth: float = 0.0075
    margin: float = 0.01
    crowd_step: float = 0.001  # above the highest score another enrolled person's photo reaches
    crowd_cap: float = 0.02

    @classmethod
    def fixed(cls, threshold: float, margin: float = 0.0) -> OpenSetRule:
        """A plain threshold (the recognition.threshold override): no growth, no crowding."""
        return cls(float(threshold), growth=0.0, margin=margin, crowd_cap=0.0)

    def for_people(self, people: int) -> float:
        return self.threshold + self.growth * math.log(max(people, self.reference_people) / self.reference_people)

    def thresholds(self, people: int, crowd: np.ndarray) -> np.ndarray:
        """Each person's threshold in a gallery of ``people``: the gallery's, raised just above
        ``crowd`` (per person: the highest score another enrolled person's photo reaches against
        them; -inf for none), by at most crowd_cap."""
        base = self.for_people(people)
        crowd = np.asarray(crowd, np.float32)
        if self.crowd_cap <= 0:
            return np.full(len(crowd), base, np.float32)
        raised = np.minimum(crowd + self.crowd_step, base + self.crowd_cap)
        return np.maximum(base, raised).astype(np.float32)

    def decide(self, row: np.ndarray, thresholds: np.ndarray, refused: np.ndarray | None = None) -> tuple[int, str]:
        """(best person's index, why not named): why is "" when they are named, else
        "negative" (closer to their "not them" faces), "threshold" or "margin"; (-1, "") when
        there is nobody to name (no finite score)."""
        order = np.argsort(-row)
        best = int(order[0]) if len(order) else -1
        if best < 0 or not np.isfinite(row[best]):
            return -1, ""
        score = float(row[best])
        second = float(row[order[1]]) if len(order) > 1 else -1.0
        if refused is not None and refused[best]:
            return best, "negative"
        if score < thresholds[best]:
            return best, "threshold"
        if score - second < self.margin:
            return best, "margin"
        return best, ""


@dataclass(frozen=True)
class Match:
    name: str | None  # None: nobody in the gallery is close enough
    score: float  # cosine similarity to the best person, whether or not they were named
    nearest: str | None  # the best person regardless of the rule (for logs and tuning)
    why: str = ""  # for an unknown face with a nearest person: "threshold", "margin", "negative" or "face check"
    clearance: float = 0.0  # score minus the nearest person's threshold (above 0: it cleared it)


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class _Rows:
    """Unit rows grouped by person (for ``people``), ready for a per-person maximum."""

    def __init__(self, people: list[str], names: Sequence[str], vectors: np.ndarray, centroid: bool = False,
                 top: int = 1):
        self.count, self.top = len(names), top
        if not len(names):
            self.rows = np.zeros((0, 0), np.float32)
            self.starts = np.zeros(0, np.intp)
            self.present = np.zeros(len(people), bool)
            return
        owner = np.searchsorted(people, names)
        order = np.argsort(owner, kind="stable")
        rows = unit_rows(vectors)[order]
        self.present = np.zeros(len(people), bool)
        self.present[owner] = True
        # the first row of each present person once sorted: np.maximum.reduceat takes their maxima
        self.starts = np.searchsorted(owner[order], np.flatnonzero(self.present))
        if centroid:
            rows = unit_rows(np.add.reduceat(rows, self.starts, axis=0))
            self.starts = np.arange(len(self.starts))
        self.rows = rows
        self.owner = owner[order]

    def scores(self, unit: np.ndarray) -> np.ndarray:
        """(N, people) best similarity to each person's rows; -inf for a person with none."""
        out = np.full((len(unit), len(self.present)), -np.inf, np.float32)
        if not self.count:
            return out
        sims = unit @ self.rows.T
        if self.top <= 1:
            out[:, self.present] = np.maximum.reduceat(sims, self.starts, axis=1)
            return out
        ends = list(self.starts[1:]) + [sims.shape[1]]
        for col, start, end in zip(np.flatnonzero(self.present), self.starts, ends):
            k = min(self.top, end - start)  # the mean of a person's k best photos
            out[:, col] = -np.sort(-sims[:, start:end], axis=1)[:, :k].mean(axis=1)
        return out


class Matcher:
    """A gallery snapshot prepared once and matched against many times: the daemon matches
    every embedding of every camera with it.

    nearest: a person's score is the best similarity to any of their embeddings (robust to a
    few odd photos). centroid: the similarity to the mean of their embeddings. top2: the mean of
    the two best similarities (measured in models/README.md, "Open set"; nearest is kept).
    ``negatives``: (names, vectors) of faces marked "this is not NAME": a face closer to NAME's
    negatives than to NAME's own embeddings is never named NAME."""

    def __init__(self, names: Sequence[str], vectors: np.ndarray, threshold: float | OpenSetRule,
                 method: str = "nearest",
                 negatives: tuple[Sequence[str], np.ndarray] | None = None):
        if method not in METHODS:
            raise ValueError(f"unknown matching method {method!r}; choose one of {', '.join(METHODS)}")
        self.rule = threshold if isinstance(threshold, OpenSetRule) else OpenSetRule.fixed(threshold)
        self.names, self.method = list(names), method
        self.people: list[str] = sorted(set(self.names))
        self._own = _Rows(self.people, self.names, vectors, centroid=method == "centroid",
                          top=2 if method == "top2" else 1)
        neg_names, neg_vectors = negatives if negatives is not None else ([], np.zeros((0, 0), np.float32))
        keep = [i for i, n in enumerate(neg_names) if n in set(self.people)]
        self._negatives = _Rows(self.people, [neg_names[i] for i in keep],
                                np.asarray(neg_vectors)[keep] if keep else np.zeros((0, 0), np.float32))
        self.threshold = self.rule.for_people(len(self.people))
        self.thresholds = self._crowded_thresholds(vectors)

    def _crowded_thresholds(self, vectors: np.ndarray) -> np.ndarray:
        """Each person's threshold: the gallery's, raised above what other enrolled people's photos score."""
        crowd = np.full(len(self.people), -np.inf, np.float32)
        if len(self.people) >= 2:
            owner = np.searchsorted(self.people, self.names)
            scores = self._own.scores(unit_rows(vectors))  # every enrolled photo against every person
            scores[np.arange(len(owner)), owner] = -np.inf  # not against its own person
            crowd = scores.max(axis=0)
        return self.rule.thresholds(len(self.people), crowd)

    def __len__(self) -> int:
        return len(self.names)

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, P) similarity of each face to each of ``people``."""
        embeddings = np.atleast_2d(embeddings)
        if not self.people:
            return np.zeros((len(embeddings), 0), np.float32)
        return self._own.scores(unit_rows(embeddings))

    def negative_scores(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, P) similarity of each face to each person's negatives (-inf: none)."""
        return self._negatives.scores(unit_rows(np.atleast_2d(embeddings)))

    def match(self, embeddings: np.ndarray) -> list[Match]:
        embeddings = np.atleast_2d(embeddings)
        if not self.people:
            return [Match(None, 0.0, None) for _ in range(len(embeddings))]
        unit = unit_rows(embeddings)
        scores = self._own.scores(unit)
        refused = self.negative_scores(unit) >= scores  # closer to "not NAME" than to NAME
        out = []
        for row, no in zip(scores, refused):
            best, why = self.rule.decide(row, self.thresholds, no)
            out.append(Match(None if why else self.people[best], float(row[best]), self.people[best], why,
                             float(row[best] - self.thresholds[best])))
        return out


def person_scores(embeddings: np.ndarray, names: Sequence[str], vectors: np.ndarray,
                  method: str = "nearest") -> tuple[list[str], np.ndarray]:
    """(people, scores[N, P]): each face's similarity to each person (see Matcher)."""
    matcher = Matcher(names, vectors, 0.0, method)
    return matcher.people, matcher.scores(embeddings)


def match(embeddings: np.ndarray, names: Sequence[str], vectors: np.ndarray, threshold: float | OpenSetRule,
          method: str = "nearest") -> list[Match]:
    """One-off matching (tools, tests); a daemon keeps a Matcher instead."""
    return Matcher(names, vectors, threshold, method).match(embeddings)
