"""Matching embeddings against the gallery: pure functions over numpy arrays, no I/O.

The embedder already places faces of one person close together, so the model on top stays
simple: cosine similarity to every enrolled embedding, the best person wins if their score
clears the threshold, else the face is unknown (None).
"""
from __future__ import annotations

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


def person_scores(embeddings: np.ndarray, names: list[str], vectors: np.ndarray, method: str = "nearest"):
    """(people, scores[N, P]): each face's similarity to each person.

    nearest: the best similarity to any of the person's embeddings (robust to a few odd photos).
    centroid: similarity to the mean of the person's embeddings.
    """
    if method not in METHODS:
        raise ValueError(f"unknown matching method {method!r}; choose one of {', '.join(METHODS)}")
    people = sorted(set(names))
    if not people:
        return people, np.zeros((len(embeddings), 0), np.float32)
    owner = np.searchsorted(people, names)
    vectors = unit_rows(vectors)
    if method == "centroid":
        centroids = np.stack([vectors[owner == i].mean(axis=0) for i in range(len(people))])
        return people, unit_rows(embeddings) @ unit_rows(centroids).T
    sims = unit_rows(embeddings) @ vectors.T  # (N, M)
    scores = np.full((len(embeddings), len(people)), -1.0, np.float32)
    for i in range(len(people)):
        scores[:, i] = sims[:, owner == i].max(axis=1)
    return people, scores


def match(embeddings: np.ndarray, names: list[str], vectors: np.ndarray, threshold: float, method: str = "nearest") -> list[Match]:
    embeddings = np.atleast_2d(embeddings)
    people, scores = person_scores(embeddings, names, vectors, method)
    if not people:
        return [Match(None, 0.0, None) for _ in embeddings]
    best = scores.argmax(axis=1)
    out = []
    for row, b in zip(scores, best):
        score = float(row[b])
        out.append(Match(people[b] if score >= threshold else None, score, people[b]))
    return out


class Matcher:
    """A gallery snapshot held in memory for fast repeated matching."""

    def __init__(self, names: list[str], vectors: np.ndarray, threshold: float, method: str = "nearest"):
        if method not in METHODS:
            raise ValueError(f"unknown matching method {method!r}; choose one of {', '.join(METHODS)}")
        self.names, self.vectors = list(names), unit_rows(vectors) if len(names) else vectors
        self.threshold, self.method = float(threshold), method

    def __len__(self):
        return len(self.names)

    def match(self, embeddings: np.ndarray) -> list[Match]:
        return match(embeddings, self.names, self.vectors, self.threshold, self.method)
