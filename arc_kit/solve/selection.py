"""Choosing two attempts from a test input's candidates: small scoring formulas, one deterministic ranking.

Why several formulas: the strong entries disagree on how to combine how often a grid was generated with how
likely the model finds it under re-scoring views (``docs/solver.md``); keeping each as a one-line
function in ``FORMULAS`` (as the ARChitects' ``selection.py`` does) lets a dry run compare them on the same
candidates. Every formula reads the same ``CandidateStats``, higher is better.

NLLs are natural-log negative log-likelihoods of a whole answer, end token included (``arc_kit.solve.rescoring``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from arc_kit.config.run import SelectionSettings
from arc_kit.core.tasks import Grid
from arc_kit.core.text import grid_to_text


@dataclass
class CandidateStats:
    """One distinct grid of a test input (in the task's own frame) and the evidence for it."""

    grid: Grid
    generated_nlls: list[float] = field(default_factory=list)  # one per generation that decoded to this grid
    scoring_nlls: list[float] = field(default_factory=list)  # NLL under each shared scoring view (may be empty)
    generated_views: list[str] = field(default_factory=list)  # the view key of each generation, when known

    @property
    def count(self) -> int:
        """How many generations (over all views) decoded to this grid after inverting their view."""
        return len(self.generated_nlls)

    def add(self, view_key: str, nll: float) -> None:
        self.generated_nlls.append(nll)
        self.generated_views.append(view_key)

    def per_view(self) -> dict[str, list[float]]:
        """Generation NLLs by view key, views in the order first met (what ``report.json`` keeps)."""
        out: dict[str, list[float]] = {}
        for key, nll in zip(self.generated_views, self.generated_nlls, strict=True):
            out.setdefault(key, []).append(nll)
        return out

    @classmethod
    def from_views(cls, grid: Grid, views: dict[str, list[float]], scoring_nlls: list[float]) -> CandidateStats:
        stats = cls(grid, scoring_nlls=list(scoring_nlls))
        for key, nlls in views.items():
            for nll in nlls:
                stats.add(key, nll)
        return stats


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


# Sums are math.fsum, exactly rounded: a score then does not depend on the order the evidence was gathered in, so
# ``arc-kit select`` re-ranking a run's report reproduces its ranking bit for bit.


def _nvarc(c: CandidateStats, w: SelectionSettings) -> float:
    """NVARC's default: votes minus the mean re-scoring NLL (a vote is worth ``vote_weight`` nats of mean NLL)."""
    return w.vote_weight * c.count - _mean(c.scoring_nlls)


def _poe(c: CandidateStats, w: SelectionSettings) -> float:
    """Product of experts: the joint log-probability over the scoring views; votes do not count."""
    return -math.fsum(c.scoring_nlls)


def _architects(c: CandidateStats, w: SelectionSettings) -> float:
    """ARChitects 2024: sum over generating and scoring views of (log p + offset), offset 3 in their code; an
    unlikely view (p < e^-offset) counts against, a likely one for, so both agreement and confidence add up."""
    return math.fsum([*(w.architects_offset - g for g in c.generated_nlls),
                      *(w.architects_offset - s for s in c.scoring_nlls)])


def _vote(c: CandidateStats, w: SelectionSettings) -> float:
    """Votes only (the behaviour without re-scoring); ties go to the lower best generation NLL through ``rank``."""
    return float(c.count)


FORMULAS: dict[str, Callable[[CandidateStats, SelectionSettings], float]] = {
    "nvarc": _nvarc,
    "poe": _poe,
    "architects": _architects,
    "vote": _vote,
}
"""Scoring formulas by name, each reading a candidate and the weights; higher is better."""


def score(c: CandidateStats, formula: str, weights: SelectionSettings | None = None) -> float:
    return FORMULAS[formula](c, weights or SelectionSettings())


def _key(c: CandidateStats, formula: str, weights: SelectionSettings) -> tuple[float, float, float, str]:
    """Sort key: higher score, then lower sum of scoring NLLs, then lower best generation NLL, then grid text.

    The grid text makes the order total, so ties never depend on the order candidates arrived in.
    """
    best_generated = min(c.generated_nlls) if c.generated_nlls else math.inf
    return -score(c, formula, weights), math.fsum(c.scoring_nlls), best_generated, grid_to_text(c.grid)


def rank(candidates: Iterable[CandidateStats], formula: str,
         weights: SelectionSettings | None = None) -> list[CandidateStats]:
    """Candidates best first under ``formula`` (with ``weights``, default the settings' defaults); the same set
    gives the same order in any input order.

    Every candidate must carry the same number of scoring NLLs (all re-scored under the same views, or none):
    a sum or mean over different views would compare different things.
    """
    if formula not in FORMULAS:
        raise ValueError(f"unknown selection formula {formula!r}; known: {', '.join(sorted(FORMULAS))}")
    candidates = list(candidates)
    sizes = {len(c.scoring_nlls) for c in candidates}
    if len(sizes) > 1:
        raise ValueError(f"candidates were re-scored under different numbers of views: {sorted(sizes)}")
    weights = weights or SelectionSettings()
    return sorted(candidates, key=lambda c: _key(c, formula, weights))


def choose_attempts(ranked: Sequence[CandidateStats]) -> tuple[Grid | None, Grid | None]:
    """The two best distinct grids of a ranked list: (first, next different), (None, None) when empty.

    A repeated grid would waste the second attempt, so duplicates in ``ranked`` are skipped.
    """
    if not ranked:
        return None, None
    first = ranked[0].grid
    second = next((c.grid for c in ranked[1:] if c.grid != first), None)
    return first, second


def margin(scores: Sequence[float], chosen: int = 2) -> float | None:
    """How far the chosen grids' scores stand above the rest: the last chosen score minus the best score not
    chosen (``scores`` ranked best first). None when nothing competes (at most ``chosen`` candidates), which
    ``confidence_key`` ranks as confident; an empty pool is the least confident of all."""
    if len(scores) <= chosen:
        return None
    return scores[chosen - 1] - scores[chosen]


def confidence_key(margins: Sequence[float | None], candidates: Sequence[int]) -> float:
    """A task's confidence for ordering revisits, least confident lowest: the smallest margin over its test
    inputs; an input without candidates counts -inf, one without competitors +inf."""
    values = [-math.inf if n == 0 else math.inf if m is None else m for m, n in zip(margins, candidates, strict=True)]
    return min(values, default=-math.inf)


def second_attempt(first: Grid | None, ranked_second: Grid | None,
                   fallbacks: Sequence[tuple[str, Grid]]) -> tuple[Grid | None, str | None]:
    """Attempt 2 and where it came from: the ranking's second grid, else the first of ``fallbacks`` ((source,
    grid) pairs: phase 1's answer, the test input, the placeholder) that differs from ``first``. A copy of
    attempt 1 can never score, any other grid might."""
    if first is None:
        return None, None
    if ranked_second is not None and ranked_second != first:
        return ranked_second, "ranked"
    for source, grid in fallbacks:
        if grid is not None and grid != first:
            return grid, source
    return None, None
