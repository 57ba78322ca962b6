"""Per-task test-time training (arc_kit.solve.ttt): the data it trains on, reset bit for bit, independence of the
tasks trained before, that training learns, and that a deadline stops it cleanly. CPU, tiny model, seconds."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from arc_kit.config.lora import LoraSettings
from arc_kit.config.run import SettingsError, SolverSettings
from arc_kit.core.augment import View
from arc_kit.core.examples import tokenize_example
from arc_kit.core.formats import ARC_KIT_FORMAT
from arc_kit.core.synthetic import generate_tasks
from arc_kit.core.tasks import Pair, Task
from arc_kit.core.text import answer_from_generation, grid_to_text
from arc_kit.solve import ttt
from arc_kit.solve.ttt import TaskAdapter, TTTError, TTTSettings, ttt_examples

SOLVER = SolverSettings(mode="greedy", scoring_views=0, views=1, device="cpu")
FAST = TTTSettings(max_samples=8, learning_rate=1e-3, lora=LoraSettings(r=8, alpha=32))


def _task(rule: str, seed: int = 0, n_train: int = 3) -> Task:
    return generate_tasks([rule], 1, seed=seed, sizes=[3], n_train=n_train)[0]


def _with_odd_test(task: Task) -> Task:
    """The task with a 4x4 one-colour test input: no 3x3 demonstration can hold its rows, so any trace of it in a
    training row would show."""
    return Task(task.task_id, task.train, (Pair(((7,) * 4,) * 4, None),))


def _load(model_dir: Path) -> Any:
    from arc_kit.models.loading import load_model

    return load_model(model_dir, SOLVER)


def _equal_states(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _full_state(model: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------------------------------
# Settings


def test_config_defaults_follow_nvarc_and_every_field_is_a_flag() -> None:
    from arc_kit.cli.main import build_parser

    c = TTTSettings()
    assert (c.enabled, c.lora.r, c.lora.alpha, c.lora.use_rslora, c.lora.train_embeddings) == (True, 32, 32, True, False)
    assert (c.max_samples, c.epochs, c.batch_size, c.learning_rate, c.warmup_ratio) == (128, 1, 1, 5e-5, 0.1)
    assert (c.lr_scheduler, c.max_grad_norm, c.weight_decay, c.optim, c.seed) == (
        "cosine", 1.0, 0.0, "adamw_torch", 0)
    assert c.max_length is None  # fitted to the GPU's free memory (arc_kit.models.memory), 8192 on a CPU
    assert c.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    for f in dataclasses.fields(TTTSettings):
        assert f.metadata.get("help"), f.name
    flags = {o for a in build_parser()._subparsers._group_actions[0].choices["dry-run"]._actions
             for o in a.option_strings}
    assert {"--ttt-lora-r", "--ttt-lora-target-modules", "--ttt-learning-rate", "--no-ttt-enabled"} <= flags
    c.check()
    for bad in ({"max_samples": 0}, {"learning_rate": 0.0}, {"warmup_ratio": 1.0},
                {"lora": LoraSettings(target_modules=[])}):
        with pytest.raises(SettingsError):
            TTTSettings(**bad).check()


# ---------------------------------------------------------------------------------------------------------------
# Data


def test_examples_leave_one_out_from_demos_only(arc_tokenizer: Any) -> None:
    task = _with_odd_test(_task("flip_lr", n_train=4))
    config = TTTSettings(max_samples=20)
    rows = ttt_examples(task, arc_tokenizer, ARC_KIT_FORMAT, config)
    assert 0 < len(rows) <= config.max_samples
    odd = [grid_to_text(((c,) * 4,) * 4) for c in range(10)]
    queries = set()
    for row in rows:
        view = View.from_key(row["view"])
        q, context = row["query_index"], row["context_indices"]
        assert q not in context and context and set(context) <= set(range(len(task.train)))
        queries.add(q)
        # Labels: -100 on the whole prompt, then exactly the completion tokens (answer grid + end of turn).
        prompt_len = next(i for i, label in enumerate(row["labels"]) if label != -100)
        assert all(label == -100 for label in row["labels"][:prompt_len])
        assert row["labels"][prompt_len:] == row["input_ids"][prompt_len:]
        prompt = arc_tokenizer.decode(row["input_ids"][:prompt_len])
        assert prompt.rstrip().endswith("assistant")
        # The target is the query demo's output, seen through the row's view; never the test input.
        target = view.invert_grid(answer_from_generation(arc_tokenizer.decode(row["labels"][prompt_len:])))
        assert target == task.train[q].output
        assert target != task.test[0].input
        # The prompt holds the context demos and the query's input, and no trace of the test input.
        text = arc_tokenizer.decode(row["input_ids"])
        assert not any(grid in text for grid in odd)
        assert grid_to_text(view.apply_grid(task.train[q].input)) in prompt
        for j in context:
            assert grid_to_text(view.apply_grid(task.train[j].output)) in prompt
    assert queries == set(range(len(task.train)))  # every demo takes its turn as the query
    assert ttt_examples(task, arc_tokenizer, ARC_KIT_FORMAT, config) == rows  # seeded: the same rows again
    assert ttt_examples(task, arc_tokenizer, ARC_KIT_FORMAT, TTTSettings(max_samples=20, seed=1)) != rows
    assert len(ttt_examples(task, arc_tokenizer, ARC_KIT_FORMAT, TTTSettings(max_samples=5))) == 5


def test_examples_without_colour_views_keep_the_task_colours(arc_tokenizer: Any) -> None:
    task = _task("flip_lr", n_train=3)
    rows = ttt_examples(task, arc_tokenizer, ARC_KIT_FORMAT, TTTSettings(max_samples=40, colour_views=False))
    assert len(rows) == 40
    assert all(View.from_key(r["view"]).colours == tuple(range(10)) for r in rows)
    assert len({r["view"] for r in rows}) > 8  # D8 and demo order still vary
    assert any(View.from_key(r["view"]).colours != tuple(range(10))
               for r in ttt_examples(task, arc_tokenizer, ARC_KIT_FORMAT, TTTSettings(max_samples=40)))


def test_examples_need_two_demos_and_fit_the_context(arc_tokenizer: Any) -> None:
    task = _task("flip_lr", n_train=4)
    one = Task(task.task_id, task.train[:1], task.test)
    assert ttt_examples(one, arc_tokenizer, ARC_KIT_FORMAT, TTTSettings()) == []
    # A context with room for the query and one demo only: every row keeps exactly one context pair.
    one_pair = tokenize_example(arc_tokenizer, ARC_KIT_FORMAT, task.train[:1], task.train[1], loss_on="answer")["length"]  # all grids are 3x3
    tight = TTTSettings(max_samples=8, max_length=one_pair)
    rows = ttt_examples(task, arc_tokenizer, ARC_KIT_FORMAT, tight)
    assert rows and all(len(r["context_indices"]) == 1 and r["length"] <= tight.max_length for r in rows)
    assert ttt_examples(task, arc_tokenizer, ARC_KIT_FORMAT, TTTSettings(max_length=30)) == []  # nothing fits: no TTT


# ---------------------------------------------------------------------------------------------------------------
# Training


@pytest.mark.slow
@pytest.mark.parametrize("train_embeddings", [False, True])
def test_reset_restores_every_weight_bit_for_bit(tiny_model_dir: Path, train_embeddings: bool) -> None:
    loaded = _load(tiny_model_dir)
    original = _full_state(loaded.model)
    adapter = TaskAdapter(loaded, dataclasses.replace(FAST, lora=dataclasses.replace(FAST.lora, train_embeddings=train_embeddings)))
    at_init = _full_state(adapter.peft_model)
    snapshot = adapter.adapter_state()
    assert any("lora_B" in k for k in snapshot)
    assert any("modules_to_save" in k for k in snapshot) == train_embeddings

    stats = adapter.train(_task("flip_lr"))
    assert stats.steps == FAST.max_samples
    assert not _equal_states(adapter.adapter_state(), snapshot)  # training moved the adapter
    adapter.reset()
    assert _equal_states(adapter.adapter_state(), snapshot)
    assert _equal_states(_full_state(adapter.peft_model), at_init)
    # Every base weight as loaded (the LoRA wraps q_proj as q_proj.base_layer, an embedding copy wraps the original
    # as embed_tokens.original_module).
    now = {k.replace(".base_layer", "").replace(".original_module", ""): v
           for k, v in _full_state(loaded.model).items()}
    assert all(k in now for k in original)
    assert _equal_states({k: now[k] for k in original}, original)
    assert not adapter.peft_model.training


@pytest.mark.slow
def test_task_b_does_not_depend_on_task_a(tiny_model_dir: Path) -> None:
    import torch

    from arc_kit.solve.decoding import DecodeRequest
    from arc_kit.solve.prompts import task_prompts
    from arc_kit.solve.solver import ArcSolver

    task_a, task_b = _task("recolour", seed=1), _task("rot180", seed=2)
    puzzle_b = task_b.without_solutions()
    config = dataclasses.replace(FAST, learning_rate=5e-3)  # enough for the tiny model to answer with a grid

    def greedy(solver: ArcSolver) -> tuple[Any, tuple[int, ...]]:
        """B's two attempts and the raw greedy tokens behind them (meaningful even when they do not parse)."""
        prompt = task_prompts(puzzle_b, solver.tokenizer, solver.prompt_format, [View()], solver.max_length)[0]
        tokens = solver.decoder.decode([DecodeRequest(0, prompt.token_ids, prompt.max_new_tokens)])[0].token_ids
        return solver.solve([puzzle_b])[0].attempts, tuple(tokens)

    alone = _load(tiny_model_dir)
    adapter = TaskAdapter(alone, config)
    stats_alone = adapter.train(task_b)
    state_alone = adapter.adapter_state()
    answer_alone = greedy(ArcSolver(alone, SOLVER))

    after_a = _load(tiny_model_dir)
    solver = ArcSolver(after_a, SOLVER)  # built before the adapter exists: it must decode with it all the same
    base_answer = greedy(solver)
    adapter = TaskAdapter(after_a, config)
    adapter.train(task_a)
    stats_after = adapter.train(task_b)
    assert _equal_states(adapter.adapter_state(), state_alone)
    assert (stats_after.steps, stats_after.loss_first, stats_after.loss_last) == (
        stats_alone.steps, stats_alone.loss_first, stats_alone.loss_last)
    assert greedy(solver) == answer_alone
    assert answer_alone != base_answer  # the solver decoded with the adapted weights

    # The same logits on B's prompt in both models; after reset, the base's again.
    prompt = task_prompts(puzzle_b, alone.tokenizer, alone.prompt_format, [View()], 8192)[0]
    ids = torch.tensor([list(prompt.token_ids)])
    with torch.no_grad():
        logits_alone = alone.model(input_ids=ids).logits
        logits_after = after_a.model(input_ids=ids).logits
        adapter.reset()
        logits_reset = after_a.model(input_ids=ids).logits
    assert torch.equal(logits_alone, logits_after)
    assert not torch.equal(logits_after, logits_reset)
    assert greedy(solver) == base_answer


@pytest.mark.slow
def test_training_lowers_the_task_loss(tiny_model_dir: Path) -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer

    loaded = _load(tiny_model_dir)
    adapter = TaskAdapter(loaded, TTTSettings(max_samples=12, learning_rate=5e-3, lora=LoraSettings(r=8, alpha=32)))
    stats = adapter.train(_task("rot180", seed=3, n_train=4))
    assert stats.steps == stats.samples == 12 and not stats.stopped_early
    assert stats.loss_first is not None and stats.loss_last is not None
    assert stats.loss_last < stats.loss_first
    assert stats.to_dict()["steps"] == 12
    # Left ready for the solver: eval mode, the adapter active and separate (reset needs it unmerged).
    assert not adapter.peft_model.training
    lora = [m for m in loaded.model.modules() if isinstance(m, BaseTunerLayer)]
    assert lora and not any(m.merged for m in lora)


@pytest.mark.slow
def test_stop_at_past_or_reached_midway(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    loaded = _load(tiny_model_dir)
    adapter = TaskAdapter(loaded, FAST)
    snapshot = adapter.adapter_state()
    stats = adapter.train(_task("flip_lr"), stop_at=time.time() - 1)
    assert (stats.steps, stats.loss_first, stats.stopped_early) == (0, None, True)
    assert _equal_states(adapter.adapter_state(), snapshot)

    # A clock that passes stop_at after the second step: training stops there, keeping those two steps.
    readings = iter([0.0, 0.0])  # read before the first step and after the first
    monkeypatch.setattr(ttt, "_now", lambda: next(readings, 100.0))
    stats = adapter.train(_task("flip_lr"), stop_at=50.0)
    assert (stats.steps, stats.stopped_early) == (2, True)
    assert not _equal_states(adapter.adapter_state(), snapshot)

    one_demo = _task("flip_lr", n_train=1)
    stats = adapter.train(one_demo)
    assert (stats.steps, stats.samples, stats.stopped_early, stats.loss_first) == (0, 0, False, None)
    assert _equal_states(adapter.adapter_state(), snapshot)  # a task without TTT decodes with the base
    adapter.config = dataclasses.replace(FAST, enabled=False)
    assert adapter.train(_task("flip_lr")).steps == 0


@pytest.mark.slow
def test_one_adapter_per_model(tiny_model_dir: Path) -> None:
    loaded = _load(tiny_model_dir)
    TaskAdapter(loaded, FAST)
    with pytest.raises(TTTError, match="one TaskAdapter per loaded model"):
        TaskAdapter(loaded, FAST)
