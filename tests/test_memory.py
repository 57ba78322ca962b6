"""Budgets per machine (``arc_kit.models.memory``): the solver's token budgets and test-time training's row length,
left unset, fit the card a worker runs on (a T4's 16 GB, an L4's 24 GB) from the memory it sees free and the
model's shape; on a CPU they keep the kit's fixed figures; a value the user sets is kept."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import pytest
import torch

from arc_kit.config.lora import LoraSettings
from arc_kit.config.run import (
    CPU_BATCH_TOKENS,
    CPU_SCORE_TOKEN_BUDGET,
    CPU_TTT_MAX_LENGTH,
    SolverSettings,
    TTTSettings,
)
from arc_kit.models import memory
from arc_kit.models.memory import CARDS, GIB, ModelShape, card_budgets, fit_budgets, fit_settings, model_shape

REPO = Path(__file__).resolve().parents[1]
QWEN3_4B = dict(layers=36, hidden=2560, intermediate=9728, heads=32, kv_heads=8, head_dim=128, dtype_bytes=2)
FULL, SHRUNK = 151_936, 16  # Qwen's vocabulary; NVARC's shrunk one


def qwen3_4b(vocab: int) -> ModelShape:
    return ModelShape(vocab=vocab, **QWEN3_4B)


def test_the_shape_arithmetic_is_qwen3_4b_s():
    shape = qwen3_4b(FULL)
    assert shape.kv_bytes == 147_456  # 2 x 36 layers x 8 KV heads x 128 x 2 bytes
    assert shape.weight_bytes / 2 == pytest.approx(4.02e9, rel=0.01)  # Qwen3-4B: 4.02 B parameters
    # TTT's rank-32 LoRA on every projection: 32 x (in + out) summed over q, k, v, o, gate, up, down, x 36 layers
    assert shape.lora_params(TTTSettings().lora) == 36 * 32 * (6656 + 3584 + 3584 + 6656 + 3 * 12288)
    trained = dataclasses.replace(TTTSettings().lora, train_embeddings=True)
    assert shape.lora_params(trained) - shape.lora_params(TTTSettings().lora) == FULL * 2560  # one tied copy


def test_a_transformers_config_gives_the_same_shape():
    from transformers import Qwen3Config

    config = Qwen3Config(vocab_size=FULL, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
                         num_attention_heads=32, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True)
    assert model_shape(config, 2) == qwen3_4b(FULL)


# The figures docs/gpu-memory.md gives: Qwen3-4B on a card, the solver's and TTT's defaults otherwise.
FIGURES = {
    ("T4", FULL): (22528, 5120, 1792),
    ("L4", FULL): (54272, 12800, 4608),
    ("T4", SHRUNK): (25600, 15872, 8192),
    ("L4", SHRUNK): (57344, 35328, 8192),
}


@pytest.mark.parametrize("card, vocab", list(FIGURES))
def test_qwen3_4b_budgets_on_a_t4_and_an_l4_fit_the_free_memory(card: str, vocab: int):
    shape = qwen3_4b(vocab)
    got = card_budgets(CARDS[card], shape)
    assert (got.batch_tokens, got.score_token_budget, got.ttt_max_length) == FIGURES[(card, vocab)]
    # Each budget fits what may be used, and one more step would not (unless TTT reached the context cap, 8192).
    kept = 8 * shape.lora_params(TTTSettings().lora)
    room = got.usable_bytes - kept
    last_logits = 8 * vocab * (2 + 4)
    assert got.batch_tokens * got.decode_bytes_per_token + last_logits <= room
    assert (got.batch_tokens + 1024) * got.decode_bytes_per_token + last_logits > room
    assert got.score_token_budget * got.score_bytes_per_token <= room < (got.score_token_budget + 512) * \
        got.score_bytes_per_token
    ttt_room = got.usable_bytes - got.ttt_adapter_bytes
    assert got.ttt_max_length * got.ttt_bytes_per_token <= ttt_room
    assert got.ttt_max_length == SolverSettings().max_length or (got.ttt_max_length + 256) * \
        got.ttt_bytes_per_token > ttt_room


def test_the_larger_card_and_the_shrunk_vocabulary_buy_more_tokens():
    for vocab in (FULL, SHRUNK):
        t4, l4 = (card_budgets(CARDS[c], qwen3_4b(vocab)) for c in ("T4", "L4"))
        assert t4.batch_tokens < l4.batch_tokens and t4.score_token_budget < l4.score_token_budget
        assert t4.ttt_max_length <= l4.ttt_max_length
    for card in ("T4", "L4"):
        full, shrunk = (card_budgets(CARDS[card], qwen3_4b(v)) for v in (FULL, SHRUNK))
        assert shrunk.score_token_budget > 2 * full.score_token_budget  # the logits dominate teacher forcing
        assert shrunk.ttt_max_length > full.ttt_max_length


def test_a_t4_with_the_full_vocabulary_cannot_train_the_default_rows():
    """The reason the log warns: 8k-token TTT rows with 151,936 logits a token do not fit beside 8 GB of weights."""
    got = card_budgets(CARDS["T4"], qwen3_4b(FULL))
    assert got.ttt_max_length < memory.TTT_TOO_SHORT < CPU_TTT_MAX_LENGTH


def test_ttt_rank_and_rows_per_step_shorten_the_rows():
    shape, free = qwen3_4b(SHRUNK), CARDS["T4"].free_after_weights(qwen3_4b(SHRUNK))
    r32 = fit_budgets(shape, free, ttt_lora=LoraSettings(r=32, alpha=32), ttt_length_cap=65536)
    r256 = fit_budgets(shape, free, ttt_lora=LoraSettings(r=256, alpha=32), ttt_length_cap=65536)
    two_rows = fit_budgets(shape, free, ttt_lora=LoraSettings(r=32, alpha=32), ttt_batch_size=2, ttt_length_cap=65536)
    assert r256.ttt_max_length < r32.ttt_max_length and r256.batch_tokens < r32.batch_tokens
    assert two_rows.ttt_max_length == pytest.approx(r32.ttt_max_length / 2, abs=256)
    no_ttt = fit_budgets(shape, free, ttt_lora=None)
    assert no_ttt.batch_tokens > r32.batch_tokens  # nothing kept for an adapter between tasks
    unchecked = fit_budgets(shape, free, ttt_lora=LoraSettings(r=32, alpha=32), ttt_checkpointing=False,
                            ttt_length_cap=65536)
    assert unchecked.ttt_max_length < r32.ttt_max_length


def test_a_tiny_model_gets_large_budgets_and_no_memory_gets_the_floor():
    tiny = ModelShape(layers=3, hidden=128, intermediate=256, heads=4, kv_heads=2, head_dim=32, vocab=16,
                      dtype_bytes=4)
    roomy = fit_budgets(tiny, 2 * GIB, ttt_lora=TTTSettings().lora, ttt_length_cap=8192)
    assert roomy.batch_tokens > 100_000 and roomy.score_token_budget > 100_000 and roomy.ttt_max_length == 8192
    starved = fit_budgets(tiny, 100 * 1024**2, ttt_lora=TTTSettings().lora)
    assert (starved.batch_tokens, starved.score_token_budget, starved.ttt_max_length) == (memory.MIN_TOKENS,) * 3


# -- in a worker -----------------------------------------------------------------------------------------------


def test_on_a_cpu_unset_budgets_keep_the_fixed_figures_and_set_ones_stay(loaded, caplog):
    with caplog.at_level(logging.INFO, logger="arc_kit.models.memory"):
        solver, ttt = fit_settings(SolverSettings(), TTTSettings(), loaded)
    assert (solver.batch_tokens, solver.score_token_budget, ttt.max_length) == (
        CPU_BATCH_TOKENS, CPU_SCORE_TOKEN_BUDGET, CPU_TTT_MAX_LENGTH) == (32768, 16384, 8192)
    [line] = [r.getMessage() for r in caplog.records]
    assert "batch_tokens 32768" in line and "on a CPU" in line
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="arc_kit.models.memory"):
        solver, ttt = fit_settings(SolverSettings(batch_tokens=4096), TTTSettings(max_length=1000), loaded)
    assert (solver.batch_tokens, solver.score_token_budget, ttt.max_length) == (4096, CPU_SCORE_TOKEN_BUDGET, 1000)
    [line] = [r.getMessage() for r in caplog.records]
    assert "as set: batch_tokens 4096, ttt.max_length 1000" in line
    caplog.clear()
    given = SolverSettings(batch_tokens=1, score_token_budget=2), TTTSettings(max_length=3)
    assert fit_settings(*given, loaded) == given and not caplog.records  # nothing to choose: nothing said


def test_on_a_gpu_the_worker_fits_its_budgets_to_the_free_memory_and_says_why(loaded, monkeypatch, caplog):
    """The tiny model on a faked CUDA device with 1 GiB free: the budgets are fit_budgets' for its shape."""
    on_gpu = dataclasses.replace(loaded, device="cuda:1", dtype=torch.bfloat16)
    seen = []
    monkeypatch.setattr(memory, "free_bytes", lambda device: seen.append(device) or GIB)
    with caplog.at_level(logging.INFO, logger="arc_kit.models.memory"):
        solver, ttt = fit_settings(SolverSettings(), TTTSettings(), on_gpu, context=4096)
    shape = model_shape(loaded.model.config, 2)
    want = fit_budgets(shape, GIB, ttt_lora=TTTSettings().lora, ttt_length_cap=4096)
    assert (solver.batch_tokens, solver.score_token_budget, ttt.max_length) == (
        want.batch_tokens, want.score_token_budget, want.ttt_max_length)
    assert seen == ["cuda:1"]
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert re.search(r"cuda:1: 1\.0 GiB free after the weights", line) and f"vocabulary {shape.vocab}" in line


def test_a_solver_fits_its_settings_once_when_it_is_built(loaded, caplog):
    from arc_kit.solve.solver import ArcSolver

    with caplog.at_level(logging.INFO, logger="arc_kit.models.memory"):
        solver = ArcSolver(loaded, SolverSettings(device="cpu"), TTTSettings(enabled=False))
    assert (solver.config.batch_tokens, solver.config.score_token_budget) == (CPU_BATCH_TOKENS, CPU_SCORE_TOKEN_BUDGET)
    assert solver.decoder.batch_tokens == CPU_BATCH_TOKENS
    assert len(caplog.records) == 1


def test_a_float16_model_refuses_ttt_embeddings_at_load():
    from arc_kit.solve.ttt import TTTError, check_precision

    trained = TTTSettings(lora=LoraSettings(r=8, alpha=8, train_embeddings=True))
    with pytest.raises(TTTError, match="ttt.lora.train_embeddings"):
        check_precision(torch.float16, trained)
    check_precision(torch.bfloat16, trained)
    check_precision(torch.float16, TTTSettings())  # LoRA matrices alone are float32 (peft): fine
    check_precision(torch.float16, dataclasses.replace(trained, enabled=False))


def test_the_docs_give_the_figures_the_code_computes():
    text = (REPO / "docs" / "gpu-memory.md").read_text(encoding="utf-8")
    for figures in FIGURES.values():
        for number in figures:
            assert f"{number:,}" in text, number
