"""The solver: loading offline, batched greedy decoding, bounds, end tokens, deadlines, candidates to attempts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from arc_kit.config.run import SolverSettings
from arc_kit.core.augment import View
from arc_kit.core.formats import ARC_KIT_FORMAT
from arc_kit.core.tasks import Pair, Task
from arc_kit.core.text import grid_to_text
from arc_kit.models.loading import LoadedModel, ModelLoadError, load_model
from arc_kit.run.workers import solve_group
from arc_kit.solve.decoding import DecodeRequest, DecodeStats, Generation, GreedyDecoder
from arc_kit.solve.prompts import task_prompts
from arc_kit.solve.solver import ArcSolver

A = ((1, 2), (3, 4))
B = ((5, 5), (5, 5))
C = ((7,),)


def small_task(task_id: str = "t1", pairs: int = 2, side: int = 3) -> Task:
    grid = tuple(tuple((r + c) % 10 for c in range(side)) for r in range(side))
    flipped = tuple(row[::-1] for row in grid)
    return Task(task_id, tuple(Pair(grid, flipped) for _ in range(pairs)), (Pair(grid, flipped),))


# -- loading


def test_missing_weights_folder_is_a_load_error(tmp_path: Path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope")
    with pytest.raises(ModelLoadError, match="no weights folder .config.json or adapter_config.json. under"):
        load_model(tmp_path)


def test_corrupt_weights_are_a_load_error_naming_the_folder(tmp_path: Path, tiny_model_dir: Path):
    for f in tiny_model_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match=str(tmp_path)):
        load_model(tmp_path, SolverSettings(device="cpu"))


def test_lora_adapter_loads_offline_and_matches_peft(tmp_path: Path, tiny_model_dir: Path, loaded: LoadedModel):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        expected = peft_model(ids).logits
    adapter = load_model(tmp_path / "adapter", SolverSettings(device="cpu", base_model=str(tiny_model_dir)))
    assert adapter.backend == "transformers+peft"
    with torch.no_grad():
        got = adapter.model(ids).logits
        plain = loaded.model(ids).logits
    assert torch.allclose(got, expected, atol=1e-4)
    assert not torch.allclose(got, plain, atol=1e-4)  # the adapter really changed the model


def test_adapter_without_its_base_says_so(tmp_path: Path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/gone/base"}))
    with pytest.raises(ModelLoadError, match="base model '/gone/base' not found"):
        load_model(tmp_path, SolverSettings(device="cpu"))


# -- batched greedy decoding ---------------------------------------------------------------------------------------


def _requests(loaded: LoadedModel, count: int, bound: int) -> list[DecodeRequest]:
    out = []
    for i in range(count):
        task = small_task(f"t{i}", pairs=1 + i % 3, side=2 + i % 4)
        out += [DecodeRequest(p, p.token_ids, bound) for p in task_prompts(task, loaded.tokenizer, loaded.prompt_format, [View()], 8192)]
    return out


def generate_one_by_one(model, tokenizer, requests):  # noqa: ANN001, ANN201
    """The reference: ``model.generate`` one prompt at a time, as ``scripts/bench_inference.py`` runs it."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_inference.py"
    spec = importlib.util.spec_from_file_location("bench_inference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_one_by_one(model, tokenizer, requests)


def test_batched_decoding_matches_generate_one_at_a_time(loaded: LoadedModel):
    requests = _requests(loaded, 6, bound=12)
    assert len({len(r.prompt_ids) for r in requests}) > 1  # left padding is exercised
    decoder = GreedyDecoder.for_config(loaded.model, loaded.tokenizer, "cpu", SolverSettings(batch_size=4))
    batched = decoder.decode(requests)
    reference = generate_one_by_one(loaded.model, loaded.tokenizer, requests)
    assert [g.token_ids for g in batched] == [g.token_ids for g in reference]
    assert [g.key for g in batched] == [r.key for r in requests]  # results come back in request order


def test_each_row_stops_at_its_bound_or_its_end_token(loaded: LoadedModel):
    import random

    decoder = GreedyDecoder.for_config(loaded.model, loaded.tokenizer, "cpu", SolverSettings(batch_size=2))
    prompts = [tuple(random.Random(seed).randrange(5, 26) for _ in range(30 + seed)) for seed in (0, 2)]
    first = decoder.decode([DecodeRequest(0, prompts[0], 10)])[0].token_ids[0]
    other = decoder.decode([DecodeRequest(1, prompts[1], 10)])[0].token_ids
    assert first not in other  # seeds chosen so that making it an end token stops row 0 only
    decoder.end_ids = [first]
    decoder.stats = DecodeStats()
    gens = decoder.decode([DecodeRequest(0, prompts[0], 10), DecodeRequest(1, prompts[1], 7)])
    assert gens[0].token_ids == [first] and gens[0].finished
    assert gens[1].token_ids == other[:7] and not gens[1].finished and not gens[1].timed_out
    assert decoder.stats.tokens == 8  # finished rows stop counting


def test_a_passed_deadline_stops_rows_and_marks_them_timed_out(loaded: LoadedModel):
    requests = _requests(loaded, 3, bound=50)
    decoder = GreedyDecoder.for_config(loaded.model, loaded.tokenizer, "cpu", SolverSettings(batch_size=2))
    gens = decoder.decode(requests, stop_at=time.time() - 1)
    assert all(g.timed_out for g in gens)
    assert all(len(g.token_ids) <= 1 for g in gens)


# -- tasks -> attempts (a scripted decoder stands in for the model) ---------------------------------------------


class ScriptedDecoder:
    """Answers each prompt with the grid ``answer(key, view)`` would give, as the model's text."""

    def __init__(self, tokenizer, solver: ArcSolver, answer):
        self.tokenizer, self.solver, self.answer = tokenizer, solver, answer
        self.stats = DecodeStats()

    def decode(self, requests, stop_at=None):
        out = []
        for r in requests:
            text = self.answer(r.key)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            out.append(Generation(r.key, ids, True, nll=1.0))
        return out


def is_plain(prompt) -> bool:  # noqa: ANN001
    return prompt.view_key == View().key


def scripted_solver(tokenizer, views: int, answer) -> ArcSolver:
    model = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=8192))
    config = SolverSettings(mode="greedy", scoring_views=0, views=views)
    solver = ArcSolver(LoadedModel(model, tokenizer, "cpu", "fake", ".", dtype=None, has_lora=False,
                                       prompt_format=ARC_KIT_FORMAT), config)
    solver.decoder = ScriptedDecoder(tokenizer, solver, answer)
    return solver


def test_colour_views_off_gives_geometric_views_for_search_and_scoring(arc_tokenizer):
    from arc_kit.solve.rescoring import scoring_views

    task = small_task()
    solver = scripted_solver(arc_tokenizer, 8, lambda prompt: "")
    geometric = solver.views(task, SolverSettings(views=8, colour_views=False))
    assert len(geometric) == 8 and all(v.colours == tuple(range(10)) for v in geometric)
    assert any(v.colours != tuple(range(10)) for v in solver.views(task, SolverSettings(views=8)))
    scored = scoring_views(task, 0, arc_tokenizer, 6, 1, 4096, colour_views=False, prompt_format=ARC_KIT_FORMAT)
    assert all(View.from_key(v.view_key).colours == tuple(range(10)) for v in scored)


def test_view_answers_are_inverted_and_voted(arc_tokenizer):
    task = small_task()
    truth = task.test[0].output
    wrong = ((9, 9, 9),)

    def answer(prompt):
        view = View.from_key(prompt.view_key)  # the key travels with the prompt: no index into a list
        grid = wrong if is_plain(prompt) else view.apply_grid(truth)  # the plain view is wrong, others right
        return grid_to_text(grid) + "<|im_end|>"

    solver = scripted_solver(arc_tokenizer, 4, answer)
    views = solver.views(task)
    assert len(views) == 4 and views[0] == View() and any(v.dihedral for v in views[1:])
    [result] = solver.solve([task])
    assert result.attempts == [(truth, wrong)]  # 3 votes beat 1
    assert result.error is None and result.unparsed == 0
    [report] = result.inputs
    assert [(c.grid, c.count) for c in report.candidates] == [(truth, 3), (wrong, 1)] and not report.rescored


def test_unparseable_output_keeps_the_placeholder_or_the_other_attempt(arc_tokenizer):
    task = small_task()

    def garbage(prompt):
        return "12\n345\n<|im_end|>" if is_plain(prompt) else "Input Output"

    [result] = scripted_solver(arc_tokenizer, 2, garbage).solve([task])
    assert result.attempts == [(None, None)] and result.unparsed == 2 and result.answered == 0

    good = ((1, 1),)

    def plain_bad(prompt):
        return "1 x\n<|im_end|>" if is_plain(prompt) else grid_to_text(good) + "<|im_end|>"

    holder = scripted_solver(arc_tokenizer, 2, plain_bad)
    view = holder.views(task)[1]
    [result] = holder.solve([task])
    assert result.attempts == [(view.invert_grid(good), None)]


def test_a_task_too_long_for_the_context_drops_pairs_and_is_still_answered(loaded: LoadedModel):
    task = small_task(pairs=8, side=6)
    config = SolverSettings(max_length=300, views=1, mode="greedy", scoring_views=0)
    solver = ArcSolver(loaded, config)
    prompts = task_prompts(task, loaded.tokenizer, loaded.prompt_format, solver.views(task), 300)
    dropped = sum(p.pairs_dropped for p in prompts)
    assert dropped > 0
    assert all(len(p.token_ids) + p.max_new_tokens <= 300 for p in prompts)
    solver.decoder = ScriptedDecoder(loaded.tokenizer, solver, lambda key: grid_to_text(A) + "<|im_end|>")
    [result] = solver.solve([task])
    assert result.attempts == [(A, None)] and result.pairs_dropped == dropped


def test_max_new_tokens_follows_the_task_not_a_full_grid(loaded: LoadedModel):
    prompts = task_prompts(small_task(side=3), loaded.tokenizer, loaded.prompt_format, [View()], 8192)
    assert prompts[0].max_new_tokens == 3 * 4 + 2  # 3x3 answer + <|im_end|> and its newline


def test_a_decoding_error_in_a_group_costs_only_its_task(arc_tokenizer):
    tasks = [small_task("good1"), small_task("bad"), small_task("good2")]

    def answer(key):
        return grid_to_text(A) + "<|im_end|>"

    solver = scripted_solver(arc_tokenizer, 1, answer)
    real = solver.decoder.decode

    def flaky(requests, stop_at=None):
        if any(r.key.task_id == "bad" for r in requests):
            raise RuntimeError("CUDA error: injected")
        return real(requests, stop_at)

    solver.decoder.decode = flaky
    results = {r.task_id: r for r in solve_group(solver, tasks, time.time() + 60)}  # the runner's one retry
    assert results["good1"].attempts == [(A, None)] and results["good2"].attempts == [(A, None)]
    assert "injected" in results["bad"].error and results["bad"].attempts == []


def test_unsloth_failing_to_load_falls_back_to_transformers(tiny_model_dir: Path, caplog):
    import torch

    from arc_kit.models.loading import _try_unsloth

    with caplog.at_level("WARNING"):
        # no GPU or Unsloth here
        assert _try_unsloth(tiny_model_dir, SolverSettings(), "cuda", torch.bfloat16, None, ARC_KIT_FORMAT) is None
    assert "using transformers" in caplog.text


class ForwardFails:
    """Stands in for a model whose patched forward raises once decoding starts (what the probe is there for)."""

    def __init__(self, model):  # noqa: ANN001
        self.config, self.generation_config = model.config, model.generation_config

    def __call__(self, **kwargs):  # noqa: ANN003
        raise RuntimeError("patched forward broke")


def _as_unsloth(loaded: LoadedModel, model) -> LoadedModel:  # noqa: ANN001
    """``loaded`` as the loader returns an Unsloth-loaded model (its backend), on ``model``."""
    from arc_kit.models.loading import UNSLOTH

    return LoadedModel(model, loaded.tokenizer, loaded.device, UNSLOTH, loaded.source, loaded.dtype, has_lora=False,
                       prompt_format=loaded.prompt_format)


def test_an_unsloth_model_that_fails_the_probe_is_loaded_again_with_transformers(
        loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch, caplog):
    import arc_kit.solve.solver as solver_module

    asked: list[SolverSettings] = []

    def fake_load(model_dir, config):  # noqa: ANN001
        asked.append(config)
        return _as_unsloth(loaded, ForwardFails(loaded.model)) if config.use_unsloth else loaded

    monkeypatch.setattr(solver_module, "load_model", fake_load)
    with caplog.at_level("WARNING"):
        solver = solver_module.load_solver("weights", SolverSettings(device="cpu"))
    assert [c.use_unsloth for c in asked] == [True, False]
    assert solver.loaded is loaded and solver.loaded.backend == "transformers"
    assert "fails the decoding probe" in caplog.text and "patched forward broke" in caplog.text


class SharedPositions:
    """Stands in for Unsloth's left-padding bug (unslothai/unsloth#3699): the forward uses one position vector for
    the whole batch (the longest row's) and drops the padding mask, so a left-padded row is decoded from the
    wrong positions while attending to its padding. Each prompt alone decodes right; only batches go wrong."""

    def __init__(self, model):  # noqa: ANN001
        self.model, self.config, self.generation_config = model, model.config, model.generation_config

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, **kwargs):  # noqa: ANN001, ANN003, ANN201
        if position_ids is not None:
            position_ids = position_ids.max(dim=0, keepdim=True).values.expand_as(position_ids)
        return self.model(input_ids=input_ids, position_ids=position_ids, cache=cache, **kwargs)

    __call__ = forward


def test_an_unsloth_model_whose_padded_batch_differs_is_loaded_again_with_transformers(
        loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch, caplog):
    import arc_kit.solve.solver as solver_module

    broken = _as_unsloth(loaded, SharedPositions(loaded.model))
    problem = solver_module.decode_problem(broken, SolverSettings(device="cpu"))
    assert problem is not None and "#3699" in problem and "left-padded" in problem
    asked: list[SolverSettings] = []

    def fake_load(model_dir, config):  # noqa: ANN001
        asked.append(config)
        return broken if config.use_unsloth else loaded

    monkeypatch.setattr(solver_module, "load_model", fake_load)
    with caplog.at_level("WARNING"):
        solver = solver_module.load_solver("weights", SolverSettings(device="cpu"))
    assert [c.use_unsloth for c in asked] == [True, False] and solver.loaded is loaded
    assert "fails the decoding probe" in caplog.text and "#3699" in caplog.text


def test_an_unsloth_model_that_decodes_is_kept(loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch, caplog):
    import arc_kit.solve.solver as solver_module

    unsloth = _as_unsloth(loaded, loaded.model)
    asked: list[SolverSettings] = []

    def fake_load(model_dir, config):  # noqa: ANN001
        asked.append(config)
        return unsloth

    monkeypatch.setattr(solver_module, "load_model", fake_load)
    with caplog.at_level("WARNING"):
        solver = solver_module.load_solver("weights", SolverSettings(device="cpu"))
    assert len(asked) == 1 and solver.loaded is unsloth and solver.loaded.model is loaded.model
    assert solver_module.decode_problem(unsloth, SolverSettings()) is None
    assert "probe" not in caplog.text


# -- search, re-scoring and settings ---------------------------------------------------------------------------


def test_the_settings_name_every_selection_formula():
    from arc_kit.config.run import FORMULAS as SELECTION_FORMULAS
    from arc_kit.solve.selection import FORMULAS

    assert set(SELECTION_FORMULAS) == set(FORMULAS)


def test_dfs_and_rescoring_on_the_tiny_model_give_two_distinct_ranked_attempts(loaded: LoadedModel):
    config = SolverSettings(mode="dfs", views=2, min_probability=1e-4, max_candidates_per_view=4, scoring_views=2)
    [result] = ArcSolver(loaded, config).solve([small_task(side=2)])
    [report] = result.inputs
    assert result.error is None and len(report.candidates) >= 2 and report.rescored
    assert result.attempts[0][0] == report.candidates[0].grid and result.attempts[0][1] == report.candidates[1].grid
    assert result.attempts[0][0] != result.attempts[0][1]
    scores = [c.score for c in report.candidates]
    assert scores == sorted(scores, reverse=True)


def test_the_search_prefills_in_the_configured_chunks(loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch):
    from arc_kit.solve import dfs

    seen = []
    real = dfs.dfs_lockstep
    monkeypatch.setattr(dfs, "dfs_lockstep", lambda *a, **kw: seen.append(kw["prefill_chunk_tokens"]) or real(*a, **kw))
    config = SolverSettings(mode="dfs", views=1, scoring_views=0, prefill_chunk_tokens=16)
    [result] = ArcSolver(loaded, config).solve([small_task(side=2)])
    assert result.error is None and seen == [16]


def test_a_search_out_of_time_keeps_what_it_found_and_the_file_stays_valid(tmp_path: Path, tiny_model_dir: Path,
                                                                            arc_files):
    from arc_kit.config.run import RunSettings
    from arc_kit.core.submission import validate_submission_file
    from arc_kit.core.tasks import load_tasks, write_task_files
    from arc_kit.run.job import RunJob
    from arc_kit.run.runner import run_submission

    tasks = sorted(load_tasks(arc_files("arc-agi-1/evaluation")[0]), key=lambda t: len(str(t)))[:3]
    challenges = tmp_path / "c.json"
    write_task_files(tasks, challenges)
    config = RunJob(model_dir=tiny_model_dir, challenges=challenges, output=tmp_path / "submission.json",
                    run=RunSettings(budget_seconds=4, margin_seconds=0.5, workers=1), progress=False,
                    solver=SolverSettings(device="cpu", mode="dfs", min_probability=1e-6, max_candidates_per_view=500,
                                           views=2, scoring_views=2))
    began = time.time()
    report = run_submission(config)
    assert time.time() - began < 12
    assert report.deadline_hit and report.ok
    assert validate_submission_file(tmp_path / "submission.json", challenges) == []


def test_a_settings_file_sets_the_defaults_and_flags_override_it(tmp_path: Path):
    from arc_kit.cli.flags import config_from_args
    from arc_kit.cli.main import build_parser
    from arc_kit.config.run import SettingsError, load_submission_config

    path = tmp_path / "s.toml"
    path.write_text('[solver]\nmode = "greedy"\nviews = 3\n[run]\nbudget_seconds = 100\n')
    assert load_submission_config(path).solver.views == 3 and load_submission_config(path).run.budget_seconds == 100
    args = build_parser().parse_args(["dry-run", "--model", "m", "--challenges", "arc-agi-1/evaluation",
                                      "--out", "o", "--settings", str(path), "--views", "5"])
    config = config_from_args(args)
    assert (config.solver.mode, config.solver.views, config.run.budget_seconds) == ("greedy", 5, 100)
    path.write_text('[solver]\nformula = "best"\n')
    with pytest.raises(SettingsError, match="formula"):
        load_submission_config(path)


def test_out_of_memory_splits_the_batch_down_to_one_row(loaded: LoadedModel, monkeypatch):
    import torch

    requests = _requests(loaded, 4, bound=6)
    decoder = GreedyDecoder.for_config(loaded.model, loaded.tokenizer, "cpu", SolverSettings(batch_size=8))
    expected = [g.token_ids for g in GreedyDecoder.for_config(loaded.model, loaded.tokenizer, "cpu", SolverSettings(batch_size=1)).decode(requests)]
    real = decoder._decode_batch

    def tight(batch, stop_at):  # more than two rows do not fit
        if len(batch) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real(batch, stop_at)

    monkeypatch.setattr(decoder, "_decode_batch", tight)
    assert [g.token_ids for g in decoder.decode(requests)] == expected and decoder.stats.oom_splits >= 1
