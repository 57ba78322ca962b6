"""The inference engine: loading offline, batched greedy decoding, bounds, end tokens, deadlines, attempts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from arc_kit.augment import View
from arc_kit.inference import (
    ArcSolver,
    DecodeRequest,
    DecodeStats,
    Generation,
    GreedyDecoder,
    InferenceConfig,
    LoadedModel,
    ModelLoadError,
    choose_attempts,
    generate_one_by_one,
    load_model,
)
from arc_kit.tasks import Pair, Task
from arc_kit.text import grid_to_text

A = ((1, 2), (3, 4))
B = ((5, 5), (5, 5))
C = ((7,),)


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path) -> LoadedModel:
    return load_model(tiny_model_dir, InferenceConfig(device="cpu"))


def small_task(task_id: str = "t1", pairs: int = 2, side: int = 3) -> Task:
    grid = tuple(tuple((r + c) % 10 for c in range(side)) for r in range(side))
    flipped = tuple(row[::-1] for row in grid)
    return Task(task_id, tuple(Pair(grid, flipped) for _ in range(pairs)), (Pair(grid, flipped),))


# -- attempts ------------------------------------------------------------------------------------------------------


def test_attempt_2_is_the_most_voted_other_answer():
    assert choose_attempts(A, [B, C, C]) == (A, C)
    assert choose_attempts(A, [A, A, B]) == (A, B)  # the plain answer is never repeated as attempt_2
    assert choose_attempts(A, [A]) == (A, None)  # Submission.set_attempts copies attempt_1 then


def test_without_a_plain_answer_the_top_two_votes_are_used():
    assert choose_attempts(None, [B, C, C]) == (C, B)
    assert choose_attempts(None, []) == (None, None)


def test_vote_ties_go_to_the_answer_seen_first():
    assert choose_attempts(A, [C, B]) == (A, C)


# -- loading -------------------------------------------------------------------------------------------------------


def test_missing_weights_folder_is_a_load_error(tmp_path: Path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope")
    with pytest.raises(ModelLoadError, match="neither config.json"):
        load_model(tmp_path)


def test_corrupt_weights_are_a_load_error_naming_the_folder(tmp_path: Path, tiny_model_dir: Path):
    for f in tiny_model_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match=str(tmp_path)):
        load_model(tmp_path, InferenceConfig(device="cpu"))


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
    adapter = load_model(tmp_path / "adapter", InferenceConfig(device="cpu", base_model=str(tiny_model_dir)))
    assert adapter.backend == "transformers+peft"
    with torch.no_grad():
        got = adapter.model(ids).logits
        plain = loaded.model(ids).logits
    assert torch.allclose(got, expected, atol=1e-4)
    assert not torch.allclose(got, plain, atol=1e-4)  # the adapter really changed the model


def test_adapter_without_its_base_says_so(tmp_path: Path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/gone/base"}))
    with pytest.raises(ModelLoadError, match="base model '/gone/base' not found"):
        load_model(tmp_path, InferenceConfig(device="cpu"))


# -- batched greedy decoding ---------------------------------------------------------------------------------------


def _requests(loaded: LoadedModel, count: int, bound: int) -> list[DecodeRequest]:
    solver = ArcSolver(loaded, InferenceConfig())
    out = []
    for i in range(count):
        requests, _, _ = solver.requests_for(small_task(f"t{i}", pairs=1 + i % 3, side=2 + i % 4))
        out += [DecodeRequest(r.key, r.prompt_ids, bound) for r in requests]
    return out


def test_batched_decoding_matches_generate_one_at_a_time(loaded: LoadedModel):
    requests = _requests(loaded, 6, bound=12)
    assert len({len(r.prompt_ids) for r in requests}) > 1  # left padding is exercised
    decoder = GreedyDecoder(loaded.model, loaded.tokenizer, batch_size=4)
    batched = decoder.decode(requests)
    reference = generate_one_by_one(loaded.model, loaded.tokenizer, requests)
    assert [g.token_ids for g in batched] == [g.token_ids for g in reference]
    assert [g.key for g in batched] == [r.key for r in requests]  # results come back in request order


def test_each_row_stops_at_its_bound_or_its_end_token(loaded: LoadedModel):
    import random

    decoder = GreedyDecoder(loaded.model, loaded.tokenizer, batch_size=2)
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


def test_a_passed_deadline_cuts_rows_and_marks_them(loaded: LoadedModel):
    requests = _requests(loaded, 3, bound=50)
    decoder = GreedyDecoder(loaded.model, loaded.tokenizer, batch_size=2)
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
            out.append(Generation(r.key, ids, True))
        return out


def scripted_solver(tokenizer, views: int, answer) -> ArcSolver:
    model = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=8192))
    solver = ArcSolver(LoadedModel(model, tokenizer, "cpu", "fake", Path(".")), InferenceConfig(views=views))
    solver.decoder = ScriptedDecoder(tokenizer, solver, answer)
    return solver


def test_view_answers_are_inverted_and_voted(arc_tokenizer):
    task = small_task()
    truth = task.test[0].output
    wrong = ((9, 9, 9),)
    holder = {}

    def answer(key):
        view = holder["solver"].views(task)[key.view_index]
        grid = wrong if key.view_index == 0 else view.apply_grid(truth)  # the plain view is wrong, others right
        return grid_to_text(grid) + "<|im_end|>"

    solver = scripted_solver(arc_tokenizer, 4, answer)
    holder["solver"] = solver
    views = solver.views(task)
    assert len(views) == 4 and views[0] == View() and any(v.dihedral for v in views[1:])
    [result] = solver.solve([task])
    assert result.attempts == [(wrong, truth)]
    assert result.error is None and result.unparsed == 0


def test_unparseable_output_keeps_the_placeholder_or_the_other_attempt(arc_tokenizer):
    task = small_task()

    def garbage(key):
        return "12\n345\n<|im_end|>" if key.view_index == 0 else "Input Output"

    [result] = scripted_solver(arc_tokenizer, 2, garbage).solve([task])
    assert result.attempts == [(None, None)] and result.unparsed == 2 and result.answered == 0

    good = ((1, 1),)

    def plain_bad(key):
        return "1 x\n<|im_end|>" if key.view_index == 0 else grid_to_text(good) + "<|im_end|>"

    holder = scripted_solver(arc_tokenizer, 2, plain_bad)
    view = holder.views(task)[1]
    [result] = holder.solve([task])
    assert result.attempts == [(view.invert_grid(good), None)]


def test_a_task_too_long_for_the_context_drops_pairs_and_is_still_answered(loaded: LoadedModel):
    task = small_task(pairs=8, side=6)
    config = InferenceConfig(max_length=300, views=1)
    solver = ArcSolver(loaded, config)
    requests, _, dropped = solver.requests_for(task)
    assert dropped > 0
    assert all(len(r.prompt_ids) + r.max_new_tokens <= 300 for r in requests)
    solver.decoder = ScriptedDecoder(loaded.tokenizer, solver, lambda key: grid_to_text(A) + "<|im_end|>")
    [result] = solver.solve([task])
    assert result.attempts == [(A, None)] and result.pairs_dropped == dropped


def test_max_new_tokens_follows_the_task_not_a_full_grid(loaded: LoadedModel):
    solver = ArcSolver(loaded, InferenceConfig())
    requests, _, _ = solver.requests_for(small_task(side=3))
    assert requests[0].max_new_tokens == 3 * 4 + 2  # 3x3 answer + <|im_end|> and its newline


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
    results = {r.task_id: r for r in solver.solve(tasks)}
    assert results["good1"].attempts == [(A, None)] and results["good2"].attempts == [(A, None)]
    assert "injected" in results["bad"].error and results["bad"].attempts == []


def test_unsloth_failing_falls_back_to_transformers(tiny_model_dir: Path, caplog):
    from arc_kit.inference import _try_unsloth

    with caplog.at_level("WARNING"):
        assert _try_unsloth(tiny_model_dir, InferenceConfig()) is None  # no GPU (or no Unsloth) here
    assert "using transformers" in caplog.text
