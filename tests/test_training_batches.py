"""The batches the real trainer trains on: exactly the length-grouped sampler's batches, and their padding logged."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_config

BATCH = 4
# Grids of several sides give rows of several lengths; 14 tasks x 3 examples = 42 rows, so 42 % 4 = 2 rows make
# a partial batch, which the sampler groups with rows of its own length like any other batch.
OVERRIDES = [
    "model.full_finetuning=false", "lora.r=4", "lora.alpha=8", "data.augmentations=1", "data.eval_fraction=0",
    "data.synthetic.rules=[\"rot180\",\"flip_lr\",\"upscale2\"]", "data.synthetic.sizes=[2,3,5,7]",
    "data.synthetic.n_tasks=14", f"train.per_device_train_batch_size={BATCH}", "train.num_train_epochs=3",
    "train.logging_steps=2", "train.save_steps=1000",
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from arc_kit.training.trainer import prepare_run

    run = prepare_run(tiny_config(tmp_path_factory.mktemp("batches") / "run", OVERRIDES))
    assert len(run.data.train) % BATCH != 0, "the test needs a partial batch"
    return run


def _rows(batch) -> list[tuple[int, ...]]:
    """The unpadded token rows of a collated batch, sorted (a batch is a set of rows, its order is free)."""
    rows = []
    for ids, mask in zip(batch["input_ids"].tolist(), batch["attention_mask"].tolist(), strict=True):
        rows.append(tuple(t for t, m in zip(ids, mask, strict=True) if m))
    return sorted(rows)


def _sampler_rows(dataset, batch: list[int]) -> list[tuple[int, ...]]:
    return sorted(tuple(dataset[i]["input_ids"]) for i in batch)


def test_trainer_dataloader_yields_exactly_the_sampler_batches(prepared):
    from arc_kit.training.dataset import LengthGroupedSampler

    trainer, dataset = prepared.trainer, prepared.data.train
    loader = trainer.get_train_dataloader()
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, LengthGroupedSampler)
    for epoch in range(3):
        loader.set_epoch(epoch)  # what the Trainer does before each epoch
        sampler.set_epoch(epoch)
        expected = sampler.batches()
        assert any(len(b) < BATCH for b in expected)  # the partial batch is there
        got = [_rows(batch) for batch in loader]
        assert got == [_sampler_rows(dataset, b) for b in expected], f"epoch {epoch}"


def test_resumed_epoch_skips_whole_sampler_batches(prepared):
    """--resume skips the batches already trained with accelerate's skip_first_batches; the rest must match."""
    from accelerate import skip_first_batches

    trainer, dataset = prepared.trainer, prepared.data.train
    sampler = trainer._get_train_sampler()
    sampler.set_epoch(1)
    expected = sampler.batches()
    loader = skip_first_batches(trainer.get_train_dataloader(), 3)
    loader.set_epoch(1)
    assert [_rows(b) for b in loader] == [_sampler_rows(dataset, b) for b in expected[3:]]


def test_training_logs_the_padding_of_the_batches_it_trained_on(prepared, tmp_path):
    import torch

    from arc_kit.training import run_training
    from arc_kit.training.dataset import padding_stats

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model runs several times faster on one thread when the cores are shared
    try:
        result = run_training(tiny_config(tmp_path / "run", OVERRIDES))
    finally:
        torch.set_num_threads(threads)
    lengths = prepared.data.train["length"]  # the same config builds the same rows and the same sampler
    sampler = prepared.trainer._get_train_sampler()
    trained = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        trained += sampler.batches()
    expected = padding_stats(lengths, trained)
    assert expected["padding_fraction"] > 0  # rows of several lengths: there is padding to count

    padding = json.loads((result.output_dir / "run_info.json").read_text())["padding"]
    assert padding["batches"] == len(trained) == result.steps
    assert (padding["real_tokens"], padding["all_tokens"]) == (expected["real_tokens"], expected["all_tokens"])
    assert padding["padding_fraction"] == pytest.approx(expected["padding_fraction"], abs=1e-4)
    rows = [json.loads(line) for line in result.log_path.read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert train_rows and all(0 <= r["padding_fraction"] < 1 for r in train_rows)
