"""Matching embeddings against the gallery: pure functions over numpy arrays, no I/O.

The embedder already places faces of one person close together, so the model on top stays
simple: cosine similarity to every enrolled embedding, the best person wins if their score
clears the threshold, else the face is unknown (None).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

METHODS = ("nearest", "centroid")


@dataclass(frozen=True)
class Match:
    name: str | None  # None: nobody in the gallery is close enough
    score: float  # cosine similarity to the best person, whether or not it cleared the threshold
    nearest: str | None  # the best person regardless of the threshold (for logs and tuning)


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class Matcher:
    """A gallery snapshot prepared once (unit rows grouped by person, or one centroid each) and
    matched against many times: the daemon matches every embedding of every camera with it.

    nearest: a person's score is the best similarity to any of their embeddings (robust to a
    few odd photos). centroid: the similarity to the mean of their embeddings."""

    def __init__(self, names: Sequence[str], vectors: np.ndarray, threshold: float, method: str = "nearest"):
        if method not in METHODS:
            raise ValueError(f"unknown matching method {method!r}; choose one of {', '.join(METHODS)}")
        self.names, self.threshold, self.method = list(names), float(threshold), method
        self.people: list[str] = sorted(set(self.names))
        owner = np.searchsorted(self.people, self.names) if self.names else np.zeros(0, np.intp)
        order = np.argsort(owner, kind="stable")
        rows = unit_rows(vectors)[order] if self.names else np.zeros((0, 0), np.float32)
        # the first row of each person once sorted by person: np.maximum.reduceat takes their maxima
        self._starts = np.searchsorted(owner[order], np.arange(len(self.people)))
        if method == "centroid" and self.names:
            rows = unit_rows(np.add.reduceat(rows, self._starts, axis=0))
            self._starts = np.arange(len(self.people))
        self._rows = rows

    def __len__(self) -> int:
        return len(self.names)

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, P) similarity of each face to each of ``people``."""
        embeddings = np.atleast_2d(embeddings)
        if not self.people:
            return np.zeros((len(embeddings), 0), np.float32)
        sims = unit_rows(embeddings) @ self._rows.T
        return np.maximum.reduceat(sims, self._starts, axis=1)

    def match(self, embeddings: np.ndarray) -> list[Match]:
        scores = self.scores(embeddings)
        if not self.people:
            return [Match(None, 0.0, None) for _ in range(len(scores))]
        out = []
        for row, best in zip(scores, scores.argmax(axis=1)):
            score = float(row[best])
            out.append(Match(self.people[best] if score >= self.threshold else None, score, self.people[best]))
        return out


def person_scores(embeddings: np.ndarray, names: Sequence[str], vectors: np.ndarray,
                  method: str = "nearest") -> tuple[list[str], np.ndarray]:
    """(people, scores[N, P]): each face's similarity to each person (see Matcher)."""
    matcher = Matcher(names, vectors, 0.0, method)
    return matcher.people, matcher.scores(embeddings)


def match(embeddings: np.ndarray, names: Sequence[str], vectors: np.ndarray, threshold: float,
          method: str = "nearest") -> list[Match]:
    """One-off matching (tools, tests); a daemon keeps a Matcher instead."""
    return Matcher(names, vectors, threshold, method).match(embeddings)
