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

from arc_kit.core.tasks import Grid
from arc_kit.core.text import grid_to_text


@dataclass
class CandidateStats:
    """One distinct grid of a test input (in the task's own frame) and the evidence for it."""

    grid: Grid
    generated_nlls: list[float] = field(default_factory=list)  # one per generation that decoded to this grid
    scoring_nlls: list[float] = field(default_factory=list)  # NLL under each shared scoring view (may be empty)

    @property
    def count(self) -> int:
        """How many generations (over all views) decoded to this grid after inverting their view."""
        return len(self.generated_nlls)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _nvarc(c: CandidateStats) -> float:
    """NVARC's default: votes minus the mean re-scoring NLL (a vote is worth one nat of average NLL)."""
    return c.count - _mean(c.scoring_nlls)


def _poe(c: CandidateStats) -> float:
    """Product of experts: the joint log-probability over the scoring views; votes do not count."""
    return -sum(c.scoring_nlls)


def _architects(c: CandidateStats) -> float:
    """ARChitects 2024: sum over generating and scoring views of (log p + 3); an unlikely view (p < e^-3) counts
    against, a likely one for, so both agreement and confidence add up."""
    return sum(3.0 - g for g in c.generated_nlls) + sum(3.0 - s for s in c.scoring_nlls)


def _vote(c: CandidateStats) -> float:
    """Votes only (the behaviour without re-scoring); ties go to the lower best generation NLL through ``rank``."""
    return float(c.count)


FORMULAS: dict[str, Callable[[CandidateStats], float]] = {
    "nvarc": _nvarc,
    "poe": _poe,
    "architects": _architects,
    "vote": _vote,
}
"""Scoring formulas by name; higher is better."""


def _key(c: CandidateStats, formula: Callable[[CandidateStats], float]) -> tuple[float, float, float, str]:
    """Sort key: higher score, then lower sum of scoring NLLs, then lower best generation NLL, then grid text.

    The grid text makes the order total, so ties never depend on the order candidates arrived in.
    """
    best_generated = min(c.generated_nlls) if c.generated_nlls else math.inf
    return -formula(c), sum(c.scoring_nlls), best_generated, grid_to_text(c.grid)


def rank(candidates: Iterable[CandidateStats], formula: str) -> list[CandidateStats]:
    """Candidates best first under ``formula``; the same set gives the same order in any input order.

    Every candidate must carry the same number of scoring NLLs (all re-scored under the same views, or none):
    a sum or mean over different views would compare different things.
    """
    if formula not in FORMULAS:
        raise ValueError(f"unknown selection formula {formula!r}; known: {', '.join(sorted(FORMULAS))}")
    candidates = list(candidates)
    sizes = {len(c.scoring_nlls) for c in candidates}
    if len(sizes) > 1:
        raise ValueError(f"candidates were re-scored under different numbers of views: {sorted(sizes)}")
    score = FORMULAS[formula]
    return sorted(candidates, key=lambda c: _key(c, score))


def choose_attempts(ranked: Sequence[CandidateStats]) -> tuple[Grid | None, Grid | None]:
    """The two best distinct grids of a ranked list: (first, next different), (None, None) when empty.

    A repeated grid would waste the second attempt, so duplicates in ``ranked`` are skipped.
    """
    if not ranked:
        return None, None
    first = ranked[0].grid
    second = next((c.grid for c in ranked[1:] if c.grid != first), None)
    return first, second


def pool_candidates(generations: Iterable[tuple[Grid, float]]) -> list[CandidateStats]:
    """Merge generations ``(grid in the task's frame, NLL)`` into one ``CandidateStats`` per distinct grid.

    Candidates come back in order of first appearance, with NLLs in arrival order; ``rank`` does not depend on it.
    """
    pooled: dict[Grid, CandidateStats] = {}
    for grid, nll in generations:
        pooled.setdefault(grid, CandidateStats(grid)).generated_nlls.append(nll)
    return list(pooled.values())
