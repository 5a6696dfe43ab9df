"""`edgeface gallery check`: a leave-one-out self-test of a gallery, pure numpy over its rows.

Each enrolled photo is matched against the rest of the gallery, with the matcher's own rule
(OpenSetRule thresholds, margin, negatives), to tell:
- per person, how often their own photos are named right when left out;
- which photos look like someone else (confusable pairs);
- how often a stranger would be named: each person in turn plays the stranger, matched against
  everyone else with the thresholds the gallery would have without them;
- what to do about each finding.
"""
from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from edgeface.recognition.match import Matcher, OpenSetRule, unit_rows

BLOCK = 1024  # rows scored at a time: keeps memory flat for big galleries
STRANGERS_MAX = 100  # people who play the stranger (an even sample of a bigger gallery)
WEAK_SHARE = 0.8  # below this share of own photos named right, a person needs better photos
STRANGER_RATE_HIGH = 0.03  # above this estimated share of strangers named, say what to change


@dataclass(frozen=True)
class PersonCheck:
    name: str
    photos: int
    tested: int  # photos left out in turn (a person with one photo cannot be tested)
    named_right: int
    named_wrong: int  # named as someone else
    threshold: float  # this person's threshold in the full gallery

    @property
    def share(self) -> float | None:
        return self.named_right / self.tested if self.tested else None


@dataclass(frozen=True)
class Confusable:
    person: str
    photo: str
    looks_like: str
    score: float  # similarity to looks_like's nearest photo
    own_score: float  # similarity to the person's own nearest other photo (-1: none)


@dataclass
class CheckReport:
    people: list[PersonCheck]
    confusable: list[Confusable]
    stranger_rate: float | None  # estimated share of strangers' faces named (None: fewer than 2 people)
    strangers_tested: int  # faces that played a stranger
    threshold: float  # the gallery's threshold before per-person raises
    margin: float
    advice: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        out = asdict(self)
        for p, d in zip(self.people, out["people"]):
            d["share"] = None if p.share is None else round(p.share, 4)
        return out


def _person_maxima(scores: np.ndarray, owner: np.ndarray, people: int) -> np.ndarray:
    """(N, people): the row-wise maximum of ``scores`` (N, R) over each person's columns; -inf for none."""
    out = np.full((len(scores), people), -np.inf, np.float32)
    for p in range(people):
        cols = owner == p
        if cols.any():
            out[:, p] = scores[:, cols].max(axis=1)
    return out


def _named(rule: OpenSetRule, row: np.ndarray, thresholds: np.ndarray, refused: np.ndarray) -> int:
    """The person index the rule names for one face's per-person scores, or -1."""
    best, why = rule.decide(row, thresholds, refused)
    return -1 if why else best


def check(names: Sequence[str], sources: Sequence[str], vectors: np.ndarray, rule: OpenSetRule,
          negatives: tuple[Sequence[str], np.ndarray] | None = None) -> CheckReport:
    matcher = Matcher(names, vectors, rule, negatives=negatives)
    people = matcher.people
    n_people = len(people)
    owner = np.searchsorted(people, list(names)) if len(names) else np.zeros(0, np.intp)
    rows = unit_rows(vectors) if len(names) else np.zeros((0, 0), np.float32)
    # every photo against every person, its own row left out: (R, P)
    loo = np.full((len(rows), n_people), -np.inf, np.float32)
    for start in range(0, len(rows), BLOCK):
        block = rows[start:start + BLOCK] @ rows.T
        idx = np.arange(start, min(start + BLOCK, len(rows)))
        block[idx - start, idx] = -np.inf
        loo[idx] = _person_maxima(block, owner, n_people)
    refused = (matcher.negative_scores(rows) >= loo) if len(rows) else np.zeros((0, n_people), bool)

    # own photos left out in turn
    checks, confusable = [], []
    for p, name in enumerate(people):
        mine = np.flatnonzero(owner == p)
        tested = right = wrong = 0
        for i in mine:
            if np.isfinite(loo[i, p]):
                tested += 1
                got = _named(rule, loo[i], matcher.thresholds, refused[i])
                right += got == p
                wrong += got not in (p, -1)
            others = loo[i].copy()
            others[p] = -np.inf
            if n_people > 1:
                q = int(others.argmax())
                if others[q] >= min(loo[i, p], matcher.thresholds[q]):
                    own = float(loo[i, p]) if np.isfinite(loo[i, p]) else -1.0
                    confusable.append(Confusable(name, sources[int(i)], people[q], round(float(others[q]), 4),
                                                 round(own, 4)))
        checks.append(PersonCheck(name, len(mine), tested, right, wrong, round(float(matcher.thresholds[p]), 4)))
    confusable.sort(key=lambda c: -c.score)

    rate, tested_strangers = _stranger_rate(loo, owner, rule, n_people, refused)
    report = CheckReport(checks, confusable, rate, tested_strangers, round(matcher.threshold, 4), rule.margin)
    report.advice = advice(report)
    return report


def _stranger_rate(loo: np.ndarray, owner: np.ndarray, rule: OpenSetRule, n_people: int,
                   refused: np.ndarray) -> tuple[float | None, int]:
    """Each person in turn plays a stranger: their photos against everyone else, with the
    thresholds the gallery would have without them (size and crowding both recomputed)."""
    if n_people < 2:
        return None, 0
    # reach[q, p]: the highest score any photo of q gets against p (the crowding input)
    reach = np.full((n_people, n_people), -np.inf, np.float32)
    for q in range(n_people):
        mine = owner == q
        if mine.any():
            reach[q] = loo[mine].max(axis=0)
    np.fill_diagonal(reach, -np.inf)
    named = total = 0
    for q in np.unique(np.linspace(0, n_people - 1, min(n_people, STRANGERS_MAX)).round().astype(int)):
        others = np.ones(n_people, bool)
        others[q] = False
        crowd = np.delete(reach, q, axis=0).max(axis=0) if n_people > 2 else np.full(n_people, -np.inf)
        thresholds = rule.thresholds(n_people - 1, crowd)
        for i in np.flatnonzero(owner == q):
            row = np.where(others, loo[i], -np.inf)
            total += 1
            named += _named(rule, row, thresholds, refused[i]) >= 0
    return (named / total if total else None), total


def advice(report: CheckReport) -> list[str]:
    out = []
    for p in report.people:
        if p.tested == 0:
            out.append(f"{p.name}: only {p.photos} photo(s); enrol 3 or more (different days, light and angles) "
                       "so a face is recognised from more than one look")
        elif p.share is not None and p.share < WEAK_SHARE:
            out.append(f"{p.name}: only {p.named_right} of {p.tested} photos are recognised from the others; "
                       "add sharper, frontal photos, ideally from the camera that will see them")
    for c in report.confusable:
        out.append(f"{c.person}: {c.photo} looks like {c.looks_like} ({c.score:.3f} vs {c.own_score:.3f} to their "
                   f"own photos). If it is not {c.person}, remove it: `edgeface gallery remove {c.person} --photo "
                   f"{shlex.quote(c.photo)}`; if the "
                   f"two just look alike, add photos of each, and mark a wrong sighting with "
                   f"`edgeface enroll --not NAME PHOTO`")
    if report.stranger_rate is not None and report.stranger_rate > STRANGER_RATE_HIGH:
        out.append(f"about {report.stranger_rate:.0%} of strangers would be named: raise recognition.threshold "
                   f"above {report.threshold:.3f} (each +0.005 names fewer strangers and fewer of your people), "
                   "or enrol photos that show each face whole and sharp")
    return out


def format_report(report: CheckReport) -> str:
    lines = [f"{'person':<24} photos  recognised  threshold"]
    for p in report.people:
        share = "untested" if p.share is None else f"{p.named_right}/{p.tested} ({p.share:.0%})"
        lines.append(f"{p.name:<24} {p.photos:>6}  {share:<10}  {p.threshold:.3f}")
    if report.confusable:
        lines.append("")
        lines.append("photos that look like someone else:")
        lines += [f"  {c.person}: {c.photo} -> {c.looks_like} {c.score:.3f} (own {c.own_score:.3f})"
                  for c in report.confusable]
    lines.append("")
    if report.stranger_rate is None:
        lines.append("strangers: enrol at least two people to estimate how often a stranger is named")
    else:
        lines.append(f"strangers named (estimated from {report.strangers_tested} faces of enrolled people playing "
                     f"strangers): {report.stranger_rate:.1%} at threshold {report.threshold:.3f}, "
                     f"margin {report.margin:.3f}")
    if report.advice:
        lines.append("")
        lines.append("advice:")
        lines += [f"  - {a}" for a in report.advice]
    return "\n".join(lines)
