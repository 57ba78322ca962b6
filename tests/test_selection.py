"""Selection: each formula orders a hand-made example as documented, ranking ignores input order and breaks ties
deterministically, and the two attempts are never the same grid."""

from __future__ import annotations

import random

import pytest

from arc_kit.solve.selection import FORMULAS, CandidateStats, choose_attempts, rank, score

A, B, C = ((1,),), ((2,),), ((3,),)


def example() -> list[CandidateStats]:
    """Three grids built so the four formulas give four different orders (worked out in the comments)."""
    return [
        # count 3, confident generations, poor re-scores: nvarc 3-3=0, poe -6, architects 8.7+0=8.7, vote 3
        CandidateStats(A, [0.1, 0.1, 0.1], [3.0, 3.0]),
        # count 1, well re-scored: nvarc 1-0.9=0.1, poe -1.8, architects 2.9+4.2=7.1, vote 1
        CandidateStats(B, [0.1], [0.9, 0.9]),
        # count 2, middling: nvarc 2-1.5=0.5, poe -3, architects 3+3=6, vote 2
        CandidateStats(C, [1.5, 1.5], [1.5, 1.5]),
    ]


@pytest.mark.parametrize(
    ("formula", "order", "scores"),
    [
        ("nvarc", [C, B, A], {A: 0.0, B: 0.1, C: 0.5}),
        ("poe", [B, C, A], {A: -6.0, B: -1.8, C: -3.0}),
        ("architects", [A, B, C], {A: 8.7, B: 7.1, C: 6.0}),
        ("vote", [A, C, B], {A: 3.0, B: 1.0, C: 2.0}),
    ],
)
def test_each_formula_gives_the_documented_order(formula, order, scores):
    for c in example():
        assert score(c, formula) == pytest.approx(scores[c.grid])
    assert [c.grid for c in rank(example(), formula)] == order
    assert choose_attempts(rank(example(), formula)) == (order[0], order[1])


def test_rank_does_not_depend_on_input_order():
    rng = random.Random(0)
    grids = [((rng.randrange(10), rng.randrange(10)),) for _ in range(40)]
    grids = list(dict.fromkeys(grids))
    # few distinct values, so many scores tie and the tie-breaks decide
    cands = [CandidateStats(g, [rng.choice([0.5, 1.0])] * rng.randint(1, 3), [rng.choice([1.0, 2.0])] * 2)
             for g in grids]
    for formula in FORMULAS:
        expected = [c.grid for c in rank(cands, formula)]
        for _ in range(5):
            shuffled = cands[:]
            rng.shuffle(shuffled)
            assert [c.grid for c in rank(shuffled, formula)] == expected


def test_ties_break_by_scoring_sum_then_best_generation_then_grid_text():
    # nvarc ties at 0.5: the lower sum of scoring NLLs wins
    x = CandidateStats(A, [1.0, 1.0], [1.5, 1.5])  # 2 - 1.5
    y = CandidateStats(B, [1.0], [0.5, 0.5])  # 1 - 0.5
    assert [c.grid for c in rank([x, y], "nvarc")] == [B, A]
    # vote ties at 2, no re-scoring: the lower best generation NLL wins (today's rule)
    p = CandidateStats(A, [0.9, 0.3], [])
    q = CandidateStats(B, [0.2, 2.0], [])
    assert [c.grid for c in rank([p, q], "vote")] == [B, A]
    # everything equal: the grid text decides, whatever the input order
    r, s = CandidateStats(((5, 1),), [1.0], []), CandidateStats(((1, 5),), [1.0], [])
    assert [c.grid for c in rank([r, s], "vote")] == [((1, 5),), ((5, 1),)]
    assert [c.grid for c in rank([s, r], "vote")] == [((1, 5),), ((5, 1),)]


def test_choose_attempts_never_repeats_a_grid():
    assert choose_attempts([]) == (None, None)
    assert choose_attempts([CandidateStats(A, [1.0])]) == (A, None)
    dup = [CandidateStats(A, [0.1]), CandidateStats(A, [0.2]), CandidateStats(B, [0.3])]
    assert choose_attempts(dup) == (A, B)
    assert choose_attempts(dup[:2]) == (A, None)


def test_unknown_formula_names_the_known_ones():
    with pytest.raises(ValueError, match="architects, nvarc, poe, vote"):
        rank(example(), "majority")


def test_candidates_scored_under_different_views_are_refused():
    with pytest.raises(ValueError, match="different numbers of views"):
        rank([CandidateStats(A, [1.0], [1.0]), CandidateStats(B, [1.0], [])], "nvarc")


def test_generations_pool_by_grid_as_the_solver_pools_them():
    """The solver keeps one CandidateStats per grid and adds each generation to it with its view."""
    pool: dict = {}
    for view, grid, nll in [("id", A, 0.5), ("rot90", B, 0.1), ("rot90", A, 0.2)]:
        pool.setdefault(grid, CandidateStats(grid)).add(view, nll)
    pooled = list(pool.values())
    assert [(c.grid, c.generated_nlls, c.count) for c in pooled] == [(A, [0.5, 0.2], 2), (B, [0.1], 1)]
    assert pool[A].per_view() == {"id": [0.5], "rot90": [0.2]}
    assert CandidateStats.from_views(A, pool[A].per_view(), []) == pool[A]  # what a revisit rebuilds from a report
    assert [c.grid for c in rank(pooled, "vote")] == [A, B]
