"""Shrinking a vocabulary (arc_kit.models.vocab, `arc-kit shrink-vocab`, `[model] shrink_vocab`): on a Qwen3 with
Qwen's real 151,936-token vocabulary, the shrunk model gives the full model's logits at the kept ids and the same
greedy answers, in both formats, tied or not; the folder loads with plain transformers; the kit's search,
re-scoring, test-time training, training and export run on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qwen3_models import write_qwen3_model

from arc_kit.cli.main import main
from arc_kit.config.run import SolverSettings
from arc_kit.core.augment import views_for_task
from arc_kit.core.formats import ARC_KIT_FORMAT, NVARC_FORMAT, NVARC_VOCAB, format_token_ids
from arc_kit.core.synthetic import generate_tasks
from arc_kit.models.manifest import read_manifest

TASKS = generate_tasks(["rot90", "flip_lr", "recolour"], 3, seed=5, sizes=[3, 4], n_train=3)




def _prompts(tokenizer, prompt_format):  # noqa: ANN001, ANN202
    from arc_kit.solve.prompts import task_prompts

    return [p for t in TASKS for p in task_prompts(t, tokenizer, prompt_format, views_for_task(t, 2, 0), 4096)]


# Each format once, and each output layer (tied to the input embedding or its own) once: shrinking a tied and
# an untied lm_head does not depend on the format, and the format's kept ids do not depend on the tying.
@pytest.mark.parametrize(("tie", "name"), [(True, "arc-kit"), (False, "nvarc")], ids=["tied-arc-kit", "untied-nvarc"])
def test_the_shrunk_model_gives_the_full_models_logits_and_answers(tmp_path: Path, tie: bool, name: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from arc_kit.models.loading import load_model
    from arc_kit.solve.decoding import DecodeRequest, GreedyDecoder

    prompt_format = ARC_KIT_FORMAT if name == "arc-kit" else NVARC_FORMAT
    out = tmp_path / "shrunk"
    full_dir = write_qwen3_model(tmp_path / "full", tie=tie)
    assert main(["shrink-vocab", str(full_dir), "--out", str(out), "--format", name]) == 0
    full = load_model(full_dir, SolverSettings(device="cpu", format=name))
    shrunk = load_model(out, SolverSettings(device="cpu"))  # the manifest says which format
    assert shrunk.prompt_format is prompt_format
    kept = format_token_ids(full.tokenizer, prompt_format)
    assert shrunk.model.config.vocab_size == len(shrunk.tokenizer) == len(kept)
    if name == "nvarc":
        assert shrunk.tokenizer.get_vocab() == NVARC_VOCAB and len(kept) == 16
    else:  # digits, newline, the prompt's words, the template's markers: a couple of dozen
        assert len(kept) < 32 and {"Input", "Output", "Test", "<|im_end|>"} <= set(shrunk.tokenizer.get_vocab())
    index = torch.tensor(kept)
    full_prompts = _prompts(full.tokenizer, prompt_format)
    shrunk_prompts = _prompts(shrunk.tokenizer, prompt_format)
    for a, b in zip(full_prompts, shrunk_prompts, strict=True):
        assert [kept[i] for i in b.token_ids] == list(a.token_ids)  # the same text, renumbered
        with torch.no_grad():
            want = full.model(torch.tensor([a.token_ids])).logits[0][:, index]
            got = shrunk.model(torch.tensor([b.token_ids])).logits[0]
        assert torch.allclose(got, want, atol=1e-5, rtol=0), (got - want).abs().max()

    def greedy(model, tokenizer, prompts):  # noqa: ANN001, ANN202
        decoder = GreedyDecoder.for_config(model, tokenizer, "cpu", SolverSettings(device="cpu"))
        generations = decoder.decode([DecodeRequest(i, p.token_ids, 12) for i, p in enumerate(prompts)])
        return [tokenizer.decode(g.token_ids, skip_special_tokens=False) for g in generations]

    # A random model's greedy choice over 151,936 tokens is almost never an answer token; a trained one's always
    # is. So the full model decodes with every other token masked out: the answers must then be the shrunk one's,
    # token for token, through every step of the KV-cached loop (generated tokens fed back in both numberings).
    assert greedy(shrunk.model, shrunk.tokenizer, shrunk_prompts) == greedy(KeptOnly(full.model, kept),
                                                                         full.tokenizer, full_prompts)

    plain_model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    plain_tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    text = prompt_format.render(plain_tokenizer, TASKS[0].train, TASKS[0].test[0].input, TASKS[0].test[0].output)
    assert plain_tokenizer(text.text, add_special_tokens=False)["input_ids"] == \
        shrunk.tokenizer(text.text, add_special_tokens=False)["input_ids"]
    assert plain_model.config.vocab_size == len(kept)
    manifest = read_manifest(out)
    assert manifest["prompt_format"] == name and manifest["vocabulary"]["source_vocab_size"] == 151936


class KeptOnly:
    """The full model with every logit outside ``kept`` at -inf: what a model trained on the format does."""

    def __init__(self, model, kept):  # noqa: ANN001
        import functools

        import torch

        self.model, self.config, self.generation_config = model, model.config, model.generation_config
        self.dropped = torch.ones(model.config.vocab_size, dtype=torch.bool)
        self.dropped[kept] = False

        @functools.wraps(model.forward)  # the model's signature, so the decoder passes its cache as the model names it
        def forward(**kwargs):  # noqa: ANN003, ANN202
            out = model(**kwargs)
            out.logits = out.logits.masked_fill(self.dropped, float("-inf"))
            return out

        self.forward = forward

    def __call__(self, **kwargs):  # noqa: ANN003, ANN204
        return self.forward(**kwargs)


def test_search_rescoring_and_ttt_run_on_a_shrunk_model(tmp_path: Path):
    from arc_kit.config.lora import LoraSettings
    from arc_kit.config.run import TTTSettings
    from arc_kit.solve.solver import load_solver

    full = write_qwen3_model(tmp_path / "full", tie=True)
    assert main(["shrink-vocab", str(full), "--out", str(tmp_path / "shrunk")]) == 0
    config = SolverSettings(device="cpu", mode="dfs", views=2, scoring_views=2, min_probability=0.05)
    ttt = TTTSettings(max_samples=2, lora=LoraSettings(r=4, alpha=8, train_embeddings=True), loss_on="all_outputs")
    solver = load_solver(tmp_path / "shrunk", config, ttt)
    assert solver.prompt_format is ARC_KIT_FORMAT and solver.loaded.model.config.vocab_size < 32
    results = solver.solve(TASKS[:2])
    assert [r.error for r in results] == [None, None]
    assert all(r.ttt["steps"] == 2 for r in results) and all(len(r.attempts) == 1 for r in results)


def test_shrink_vocab_refuses_what_it_cannot_shrink(tmp_path: Path, capsys):
    full = write_qwen3_model(tmp_path / "full", tie=True)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    assert main(["shrink-vocab", str(full), "--out", str(tmp_path / "used")]) == 2
    assert "is not empty" in capsys.readouterr().err and (tmp_path / "used" / "keep.txt").read_text() == "mine"
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    assert main(["shrink-vocab", str(tmp_path / "adapter"), "--out", str(tmp_path / "shrunk")]) == 2
    assert "LoRA adapter" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("start", ["published", "shrink_vocab"])
def test_training_continues_in_nvarc_format_and_the_export_keeps_it(start: str, nvarc_published_dir: Path,
                                                                    tmp_path: Path):
    """From NVARC's published folder (format found by its tokenizer), or from a full-vocabulary Qwen3 shrunk to
    NVARC's 16 tokens by ``model.shrink_vocab``: LoRA training with the loss on every output, then an export whose
    manifest records the format and whose merged model the solver loads in it."""
    from arc_kit.config.training import load_config, resolve_config_path
    from arc_kit.solve.solver import load_solver
    from arc_kit.training import export_model, run_training

    if start == "published":
        base, extra = nvarc_published_dir, []
    else:
        base, extra = write_qwen3_model(tmp_path / "full"), ["model.shrink_vocab=true", "model.format=nvarc"]
    config = load_config(resolve_config_path("tiny-cpu"), [
        f"model.name_or_path={base}", "model.full_finetuning=false", "lora.r=4", "lora.alpha=8",
        "data.loss_on=all_outputs", "data.synthetic.n_tasks=6", "data.augmentations=1", "data.eval_fraction=0",
        "train.per_device_train_batch_size=2", "train.max_steps=2", f"train.output_dir={tmp_path / 'run'}",
        *extra])
    result = run_training(config)
    info = json.loads((result.output_dir / "run_info.json").read_text())
    assert info["prompt_format"] == "nvarc" and result.steps == 2
    merged = export_model(result.output_dir, tmp_path / "export")
    manifest = read_manifest(merged)
    assert (manifest["prompt_format"], manifest["loss_on"]) == ("nvarc", "all_outputs")
    solver = load_solver(merged, SolverSettings(device="cpu"))
    assert solver.prompt_format is NVARC_FORMAT and solver.loaded.model.config.vocab_size == 16
    assert solver.tokenizer.get_vocab() == NVARC_VOCAB


def test_the_kits_own_tiny_model_shrinks_and_runs_a_dry_run(tiny_model_dir: Path, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture):
    """The kit's tokenizer holds its special tokens at the lowest ids: shrunk, they must keep ids of their
    own, not land on the words' (a tokenizer whose ``<|im_end|>`` reads as ``assistant`` splits the format apart)."""
    from transformers import AutoTokenizer

    from arc_kit.core.tasks import write_task_files

    shrunk = tmp_path / "shrunk"
    assert main(["shrink-vocab", str(tiny_model_dir), "--out", str(shrunk)]) == 0
    tokenizer = AutoTokenizer.from_pretrained(shrunk, local_files_only=True)
    ids = tokenizer.get_vocab()
    assert sorted(ids.values()) == list(range(len(ids))), ids  # every token its own id, none shared
    assert {"<|im_start|>", "<|im_end|>", "input", "assistant"} <= set(ids)
    source = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    kept = format_token_ids(source, ARC_KIT_FORMAT)
    text = ARC_KIT_FORMAT.render(source, TASKS[0].train, TASKS[0].test[0].input, TASKS[0].test[0].output).text
    assert [kept[i] for i in tokenizer(text, add_special_tokens=False)["input_ids"]] == \
        source(text, add_special_tokens=False)["input_ids"]

    challenges, solutions = tmp_path / "c.json", tmp_path / "s.json"
    write_task_files(TASKS[:2], challenges, solutions)
    out = tmp_path / "run"
    assert main(["dry-run", "--model", str(shrunk), "--challenges", str(challenges), "--solutions", str(solutions),
                 "--out", str(out), "--mode", "dfs", "--views", "2", "--scoring-views", "2",
                 "--ttt-max-samples", "2", "--no-spare-time"]) == 0
    submission = json.loads((out / "submission.json").read_text())
    assert set(submission) == {t.task_id for t in TASKS[:2]}
    report = json.loads((out / "report.json").read_text())
    assert report.get("model_error") is None, report.get("model_error")

    # Shrinking it again: nothing left to drop, so a valid copy of the same vocabulary (and a line saying so).
    again = tmp_path / "again"
    assert main(["shrink-vocab", str(shrunk), "--out", str(again)]) == 0
    assert "already holds only the arc-kit format's 24 tokens" in caplog.text
    assert AutoTokenizer.from_pretrained(again, local_files_only=True).get_vocab() == ids
