"""Galleries made without the model: people with random embeddings."""
import hashlib

import numpy as np

from edgeface.store.gallery import Enrolment, Gallery

MODEL = "0" * 64  # a model id no real model has


def enrol(db, name, photos=1, source=None):
    """``name`` in the gallery at ``db`` with ``photos`` faces (random vectors; no model needed)."""
    rng = np.random.default_rng()
    with Gallery(db) as g:
        g.add(name, [Enrolment(rng.normal(size=128).astype(np.float32), hashlib.sha256(f"{name}/{k}".encode()).hexdigest(),
                               source or f"{name}-{k}.jpg") for k in range(photos)], MODEL)
