"""The solver the runner gives each worker: tasks -> views -> prompts -> candidates (greedy or depth-first search)
-> grids in the task's frame, pooled over views -> re-scored under shared augmented views -> two attempts.

Each stage is its own module (``prompts``, ``decoding``, ``dfs``, ``scoring``, ``selection``); this one strings them
together, keeps time, and says per test input what happened (candidates, ranks, seconds) for the report.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arc_kit.config.run import SolverSettings, TTTSettings
from arc_kit.core.augment import View, views_for_task
from arc_kit.core.tasks import Grid, Pair, Task
from arc_kit.core.text import ParseError
from arc_kit.models.loading import UNSLOTH, LoadedModel, context_limit, load_model
from arc_kit.solve.decoding import DecodeRequest, GreedyDecoder
from arc_kit.solve.prompts import Prompt, task_prompts

log = logging.getLogger(__name__)

SCORING_SEED_OFFSET = 1  # the scoring views are drawn from another seed than the generating ones


@dataclass
class RankedCandidate:
    grid: Grid
    score: float  # under the run's formula (higher is better); the vote count when not re-scored
    count: int  # generations (over all views) that decoded to this grid
    vote_rank: int  # its place by vote alone, before re-scoring (0 = first)
    views: dict[str, list[float]] = field(default_factory=dict)  # generation NLLs by the view that produced them
    scoring_nlls: list[float] = field(default_factory=list)  # one per scoring view (InputResult.scoring_views)


@dataclass
class InputResult:
    """What one test input went through: every distinct candidate, best first, and where the time went."""

    candidates: list[RankedCandidate] = field(default_factory=list)
    rescored: bool = False
    decode_seconds: float = 0.0
    score_seconds: float = 0.0
    scoring_views: list[str] = field(default_factory=list)  # view keys of the scoring NLLs, in their order
    formula: str = "vote"  # the formula the candidates were ranked by
    margin: float | None = None  # selection.margin of the ranking: the chosen grids' lead over the rest


@dataclass
class TaskResult:
    """What one task produced; ``attempts[i]`` is (attempt_1, attempt_2) for test input i, None = placeholder."""

    task_id: str
    attempts: list[tuple[Grid | None, Grid | None]] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    pairs_dropped: int = 0  # over all prompts of the task
    unparsed: int = 0  # generations that were not a grid
    timed_out: bool = False  # some generation was stopped by the deadline or the cap
    error: str | None = None
    inputs: list[InputResult] = field(default_factory=list)
    ttt: dict[str, Any] | None = None  # test-time training: steps, first and last loss, seconds

    @property
    def answered(self) -> int:
        return sum(1 for a1, a2 in self.attempts if a1 is not None or a2 is not None)


@dataclass
class _Found:
    """The completions of one prompt: (token ids, NLL) each; ``timed_out`` when the deadline stopped its search."""

    completions: list[tuple[tuple[int, ...], float]] = field(default_factory=list)
    timed_out: bool = False
    seconds: float = 0.0
    tokens: int = 0  # tokens the model ran for it after the prompt (greedy: the completion; search: its passes)


class ArcSolver:
    """Solves groups of tasks with one loaded model."""

    def __init__(self, loaded: LoadedModel, config: SolverSettings, ttt: TTTSettings | None = None):
        """Budgets left unset in ``config`` and ``ttt`` are fitted to the memory the model's device has free now
        (``models.memory.fit_settings``, one log line): build the solver once the weights are loaded."""
        from arc_kit.models.memory import fit_settings

        self.loaded = loaded
        self.max_length = context_limit(loaded, config)
        self.config, self.ttt = fit_settings(config, ttt if ttt is not None else TTTSettings(enabled=False), loaded,
                                             context=self.max_length)
        config = self.config
        if self.ttt.enabled:
            from arc_kit.solve.ttt import check_precision

            check_precision(loaded.dtype, self.ttt)  # at load, not at every task
        self._adapter: Any = None  # the TaskAdapter, made at the first task that trains
        self.tokenizer = loaded.tokenizer
        self.prompt_format = loaded.prompt_format
        self.decoder = GreedyDecoder.for_config(loaded.model, loaded.tokenizer, loaded.device, config)
        self.search_passes = 0  # batched forward passes of the depth-first search (lock-step), over all tasks

    def views(self, task: Task, config: SolverSettings | None = None) -> list[View]:
        config = config or self.config
        return views_for_task(task, config.views, config.seed, permute_colours=config.colour_views)

    def spare_views(self, task: Task) -> list[View]:
        """The views a revisit searches: ``spare_views`` more, drawn after the first search's (the same seeded
        sequence continued), so no generation is counted twice when the two searches are pooled."""
        c = self.config
        every = views_for_task(task, c.views + c.spare_views, c.seed, permute_colours=c.colour_views)
        return every[c.views :]

    def solve(self, tasks: Sequence[Task], stop_at: float | None = None) -> list[TaskResult]:
        """Answer ``tasks`` with the full configured solver: with test-time training, each task is trained on
        (up to ``ttt.time_share`` of its time) and answered alone. An exception fails the whole group: the runner
        then retries task by task, so a bad task costs only itself."""
        return self._solve(tasks, stop_at, self.config, self.views, {})

    def revisit(self, tasks: Sequence[Task], stop_at: float | None,
                priors: dict[str, list[InputResult]]) -> list[TaskResult]:
        """The spare-time phase: answer ``tasks`` again with ``spare_views`` new views searched at
        ``spare_min_probability``, each test input's new candidates pooled with ``priors[task_id]`` (what the
        first search found, per test input) and the pool re-scored and ranked as one: the answer changes only
        where the pool ranks another grid higher. Test-time training runs again as in ``solve`` (same seed)."""
        config = dataclasses.replace(self.config, views=self.config.spare_views,
                                     min_probability=self.config.spare_min_probability)
        return self._solve(tasks, stop_at, config, lambda task, _config: self.spare_views(task), priors)

    def _solve(self, tasks: Sequence[Task], stop_at: float | None, config: SolverSettings,
               views: Callable[[Task, SolverSettings], list[View]],
               priors: dict[str, list[InputResult]]) -> list[TaskResult]:
        if not self.ttt.enabled:
            return self._answer(tasks, stop_at, config, views, priors)
        results = []
        for task in tasks:
            now = time.time()
            train_until = None if stop_at is None else now + self.ttt.time_share * max(0.0, stop_at - now)
            stats = self.adapter().train(task, train_until)
            [result] = self._answer([task], stop_at, config, views, priors)
            result.ttt = stats.to_dict()
            result.seconds = time.time() - now
            results.append(result)
        return results

    def quick(self, tasks: Sequence[Task], stop_at: float | None = None) -> list[TaskResult]:
        """Plain greedy with the base model on the task as given, one view, no re-scoring: the anytime schedule's
        first pass, so every task holds a real answer early."""
        if self._adapter is not None:
            self._adapter.reset()  # the LoRA back at its start, which adds nothing: the base model answers
        return self._answer(tasks, stop_at, quick_config(self.config), self.views, {})

    def adapter(self) -> Any:
        """The one TaskAdapter on this worker's model (it adds its LoRA once, then resets it per task)."""
        if self._adapter is None:
            from arc_kit.solve.ttt import TaskAdapter

            self._adapter = TaskAdapter(self.loaded, self.ttt)
        return self._adapter

    def _answer(self, tasks: Sequence[Task], stop_at: float | None, config: SolverSettings,
                views: Callable[[Task, SolverSettings], list[View]],
                priors: dict[str, list[InputResult]]) -> list[TaskResult]:
        began = time.time()
        prompts = {t.task_id: task_prompts(t, self.tokenizer, self.prompt_format, views(t, config), self.max_length)
                   for t in tasks}
        found = self._find([p for ps in prompts.values() for p in ps], stop_at, config)
        results = [self._choose(task, prompts[task.task_id], found, stop_at, config, priors.get(task.task_id))
                   for task in tasks]
        for result in results:
            result.seconds = time.time() - began
        return results

    # -- candidates

    def _find(self, prompts: list[Prompt], stop_at: float | None, config: SolverSettings) -> dict[Prompt, _Found]:
        if config.mode == "greedy":
            return self._greedy(prompts, stop_at)
        return self._search(prompts, stop_at, config)

    def _greedy(self, prompts: list[Prompt], stop_at: float | None) -> dict[Prompt, _Found]:
        if not prompts:
            return {}
        began = time.time()
        generations = self.decoder.decode([DecodeRequest(p, p.token_ids, p.max_new_tokens) for p in prompts],
                                          stop_at)
        share = (time.time() - began) / len(prompts)
        return {g.key: _Found([] if g.timed_out else [(tuple(g.token_ids), g.nll)], g.timed_out, share,
                              len(g.token_ids)) for g in generations}

    def _search(self, prompts: list[Prompt], stop_at: float | None, config: SolverSettings) -> dict[Prompt, _Found]:
        """Every completion at least ``min_probability`` likely, all prompts searched in lock-step batches
        (``dfs_lockstep``), plus each prompt's greedy completion (``keep_greedy``: the search follows it to its end
        whatever its probability), so the pool is never smaller than greedy decoding's and no separate greedy pass
        is paid for: a small model often gives its greedy answer less than ``p``."""
        from arc_kit.solve.dfs import answer_token_ids, dfs_lockstep

        if not prompts:
            return {}
        if stop_at is not None and time.time() >= stop_at:
            return {p: _Found(timed_out=True) for p in prompts}
        began = time.time()
        expand_ids, end_ids = answer_token_ids(self.tokenizer, self.prompt_format)
        searched = dfs_lockstep(self.loaded.model, [p.token_ids for p in prompts],
                                max_new_tokens=[p.max_new_tokens for p in prompts],
                                min_probability=config.min_probability, expand_ids=expand_ids, end_ids=end_ids,
                                max_candidates_per_view=config.max_candidates_per_view, device=self.loaded.device,
                                prefill_chunk_tokens=config.prefill_chunk_tokens, batch_size=config.batch_size,
                                batch_tokens=config.batch_tokens, kv_cache=self.decoder.kv_cache, keep_greedy=True,
                                stop_at=stop_at)
        self.decoder.kv_cache = searched.kv_cache  # a model that refused the in-place cache is not asked again
        seconds = time.time() - began
        self.decoder.stats.tokens += sum(r.forward_passes for r in searched.results)  # tokens the search fed
        self.decoder.stats.seconds += seconds
        self.search_passes += searched.forward_passes
        share = seconds / len(prompts)
        return {p: _Found([(c.token_ids, c.nll) for c in r.candidates], r.timed_out, share, r.forward_passes)
                for p, r in zip(prompts, searched.results, strict=True)}

    # -- from candidates to two attempts

    def _choose(self, task: Task, prompts: list[Prompt], found: dict[Prompt, _Found], stop_at: float | None,
                config: SolverSettings, prior: list[InputResult] | None = None) -> TaskResult:
        """Pool each test input's generations by grid (after the prior candidates, when revisiting), re-score the
        pool under shared views, rank it and take two attempts."""
        from arc_kit.solve.selection import CandidateStats, choose_attempts, margin, rank, score

        result = TaskResult(task.task_id, pairs_dropped=sum(p.pairs_dropped for p in prompts))
        pools: list[dict[Grid, CandidateStats]] = [{} for _ in task.test]
        for index, before in enumerate((prior or [])[: len(task.test)]):
            for c in before.candidates:
                pools[index][c.grid] = CandidateStats.from_views(c.grid, c.views, [])
        result.inputs = [InputResult() for _ in task.test]
        for prompt in prompts:
            f = found.get(prompt, _Found(timed_out=True))
            result.timed_out |= f.timed_out
            result.inputs[prompt.test_index].decode_seconds += f.seconds
            result.tokens += f.tokens
            for token_ids, nll in f.completions:
                grid = self.grid_of(token_ids, prompt.view_key)
                if grid is None:
                    result.unparsed += 1
                    continue
                pools[prompt.test_index].setdefault(grid, CandidateStats(grid)).add(prompt.view_key, nll)
        weights = config.selection
        for index, pool in enumerate(pools):
            report = result.inputs[index]
            candidates = list(pool.values())
            votes = rank(candidates, "vote", weights)
            formula = "vote"
            if config.scoring_views and len(candidates) > 1 and (stop_at is None or time.time() < stop_at):
                began = time.time()
                report.scoring_views = self._rescore(task, index, candidates, config)
                report.score_seconds, report.rescored, formula = time.time() - began, True, config.formula
            ranked = rank(candidates, formula, weights) if formula != "vote" else votes
            vote_place = {id(c): i for i, c in enumerate(votes)}
            report.formula = formula
            report.candidates = [RankedCandidate(c.grid, score(c, formula, weights), c.count, vote_place[id(c)],
                                                 c.per_view(), list(c.scoring_nlls)) for c in ranked]
            report.margin = margin([c.score for c in report.candidates])
            result.attempts.append(choose_attempts(ranked))
        return result

    def grid_of(self, token_ids: Sequence[int], view_key: str) -> Grid | None:
        text = self.tokenizer.decode(list(token_ids), skip_special_tokens=False)
        try:
            return View.from_key(view_key).invert_grid(self.prompt_format.parse_answer(text))
        except (ParseError, ValueError, IndexError):
            return None

    def _rescore(self, task: Task, test_index: int, candidates: list[Any], config: SolverSettings) -> list[str]:
        """Every candidate's NLL under the same ``scoring_views`` augmented views of the task (product of experts);
        the views' keys, in the order of the NLLs."""
        from arc_kit.solve.rescoring import candidate_nlls, scoring_views

        views = scoring_views(task, test_index, self.tokenizer, config.scoring_views,
                              config.seed + SCORING_SEED_OFFSET, self.max_length, colour_views=config.colour_views,
                              prompt_format=self.prompt_format)
        nlls = candidate_nlls(self.loaded.model, self.tokenizer, views, [c.grid for c in candidates],
                              prompt_format=self.prompt_format, score_token_budget=config.score_token_budget,
                              device=self.loaded.device)
        for candidate, scores in zip(candidates, nlls, strict=True):
            candidate.scoring_nlls = list(scores)
        return [v.view_key for v in views]


def quick_config(config: SolverSettings) -> SolverSettings:
    """The first pass's settings: greedy on the task as given (one view), no re-scoring, the rest unchanged."""
    return dataclasses.replace(config, mode="greedy", views=1, scoring_views=0)


def load_solver(model_dir: str | Path, config: SolverSettings, ttt: TTTSettings | None = None) -> ArcSolver:
    """The solver on the model in ``model_dir``. Unsloth patches the model's forward: before it is trusted with
    hours of decoding, ``decode_problem`` checks it decodes a left-padded batch as it decodes each prompt alone;
    when it does not (or raises) the model is loaded again through transformers (a WARNING says why)."""
    loaded = load_model(model_dir, config)
    if loaded.backend == UNSLOTH:
        problem = decode_problem(loaded, config)
        if problem is not None:
            log.warning("Unsloth's model for %s fails the decoding probe (%s); loading it with transformers",
                        model_dir, problem)
            _release(loaded)
            loaded = load_model(model_dir, dataclasses.replace(config, use_unsloth=False))
    return ArcSolver(loaded, config, ttt)


PROBE_TOKENS = 8  # greedy tokens each probe prompt decodes
PROBE_TASKS = (
    Task("probe-a", (Pair(((1, 0), (0, 2)), ((2, 0), (0, 1))), Pair(((3, 3, 0),), ((0, 3, 3),))),
         (Pair(((0, 4), (5, 0))),)),
    Task("probe-b", (Pair(((7,),), ((7, 7),)),), (Pair(((6,),)),)),
)
"""Two small tasks whose prompts differ in length, so decoding them together left-pads one of them."""


def decode_problem(loaded: LoadedModel, config: SolverSettings) -> str | None:
    """Why the model cannot be trusted with the solver's batched decoding, in one line, or None when it can.

    The probe decodes two prompts of different lengths together (left-padded, as the greedy decoder and the
    lock-step search batch them) and each alone, ``PROBE_TOKENS`` greedy tokens each, and compares them token
    for token. Unsloth's patched inference has given garbage for the padded rows of such a batch (one position
    vector for the whole batch, masks dropped in the decode path: unslothai/unsloth#3699, #1638) while decoding
    each prompt alone fine, so "it runs" is not enough. An exception (a forward that refuses the decoder's
    arguments) is a problem too. A near tie decided differently by batched bf16 kernels would also show as a
    mismatch: the fallback is then a slower transformers load, never a wrong answer.
    """
    from arc_kit.core.augment import View

    tokenizer = loaded.tokenizer
    try:
        prompts = [task_prompts(task, tokenizer, loaded.prompt_format, [View()], 4096)[0].token_ids for task in PROBE_TASKS]
        if len(prompts[0]) == len(prompts[1]):
            prompts[1] = prompts[1][1:]
        requests = [DecodeRequest(i, p, PROBE_TOKENS) for i, p in enumerate(prompts)]
        # With kv_cache = "inplace" a forward that refuses the in-place cache falls back to DynamicCache (a warning).
        together = GreedyDecoder.for_config(loaded.model, tokenizer, loaded.device,
                                            dataclasses.replace(config, batch_size=2)).decode(requests)
        alone = [GreedyDecoder.for_config(loaded.model, tokenizer, loaded.device,
                                          dataclasses.replace(config, batch_size=1)).decode([r])[0] for r in requests]
    except Exception as e:  # anything Unsloth's patched forward raises
        return f"{type(e).__name__}: {e}"
    for i, (batched, single) in enumerate(zip(together, alone, strict=True)):
        if batched.token_ids != single.token_ids:
            padded = "the left-padded" if len(prompts[i]) < max(map(len, prompts)) else "the longer"
            return (f"{padded} prompt of a batch of two decodes {batched.token_ids} but {single.token_ids} alone "
                    "(batched generation with left padding is broken: unslothai/unsloth#3699)")
    return None


def _release(loaded: LoadedModel) -> None:
    """Drop the model's weights before another copy is loaded, so the two never share the GPU's memory."""
    import gc

    import torch

    loaded.model = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
