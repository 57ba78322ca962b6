"""Task mixes: sources with their own views and weights, de-duplication and the held-out refusal by content."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from arc_kit.config.schema import SettingsError
from arc_kit.config.training import (
    DataSettings,
    SourceSettings,
    SyntheticSettings,
    load_config,
    resolve_config_path,
)
from arc_kit.core.augment import View
from arc_kit.core.formats import ARC_KIT_FORMAT
from arc_kit.core.synthetic import generate_tasks
from arc_kit.core.tasks import load_tasks, task_to_json, write_task_files
from arc_kit.training.canonical import task_digest
from arc_kit.training.mix import MixError, load_mix, write_held_out_digests

REPO = Path(__file__).resolve().parents[1]
ANSWER_ONLY = dict(prompt_format=ARC_KIT_FORMAT, loss_on="answer")


def disguised(task, seed: int, task_id: str):
    """The task under a random rotation/reflection, colour permutation (background too) and pair order."""
    rng = random.Random(seed)
    colours = list(range(10))
    rng.shuffle(colours)
    order = list(range(len(task.train)))
    rng.shuffle(order)
    view = View(1 + seed % 7, tuple(colours), tuple(order))
    copy = view.apply_task(task)
    return type(task)(task_id, copy.train, copy.test)


def write_folder(folder: Path, tasks) -> Path:
    """One JSON per task with test outputs inline (the ARC-AGI / ConceptARC repos' layout)."""
    folder.mkdir(parents=True, exist_ok=True)
    for t in tasks:
        raw = task_to_json(t)
        raw["test"] = [{"input": [list(r) for r in p.input], "output": [list(r) for r in p.output]} for p in t.test]
        (folder / f"{t.task_id}.json").write_text(json.dumps(raw))
    return folder


def test_digest_is_the_same_for_every_disguise_and_differs_between_tasks():
    tasks = generate_tasks(["gravity_down", "recolour", "flip_lr"], 30, seed=3, sizes=[3, 4, 5])
    digests = [task_digest(t) for t in tasks]
    assert len(set(digests)) == len(tasks)
    for n, t in enumerate(tasks):
        assert task_digest(disguised(t, n, "other-id")) == digests[n]
        assert task_digest(t.without_solutions()) == digests[n]  # solutions or not, the same task


def test_held_out_copies_are_refused_under_any_id_rotation_or_colours(tmp_path):
    held = generate_tasks(["gravity_down", "flip_lr"], 6, seed=11, sizes=[4, 5])
    write_task_files(held, tmp_path / "eval_challenges.json", tmp_path / "eval_solutions.json")
    fresh = generate_tasks(["rot180"], 5, seed=12, sizes=[4])
    copies = [disguised(held[0], 1, "renamed"), disguised(held[1], 2, "rotated"), disguised(held[2], 3, "recoloured"),
              held[3]]  # the last one as it is, under its own id
    edited = type(held[4])("edited", held[4].train[:1], held[4].test)  # a train pair dropped, the answer kept
    folder = write_folder(tmp_path / "train", [*copies, edited, *fresh])
    d = DataSettings(sources=[SourceSettings(path=str(folder))], held_out=[str(tmp_path / "eval_challenges.json")])
    [src] = load_mix(d, quiet=True)
    assert sorted(src.refused_held_out) == sorted(["renamed", "rotated", "recoloured", held[3].task_id, "edited"])
    assert sorted(t.task_id for t in src.tasks) == sorted(t.task_id for t in fresh)


def test_duplicates_across_sources_are_dropped_and_ids_must_not_clash(tmp_path):
    tasks = generate_tasks(["flip_ud", "transpose"], 8, seed=5, sizes=[3, 4])
    a = write_folder(tmp_path / "a", tasks[:5])
    b = write_folder(tmp_path / "b", [disguised(tasks[0], 0, "b0"), tasks[1], *tasks[5:]])
    d = DataSettings(sources=[SourceSettings(path=str(a)), SourceSettings(path=str(b), augmentations=2)],
                     held_out=[])
    first, second = load_mix(d, quiet=True)
    assert len(first.tasks) == 5 and second.duplicates == 2 and len(second.tasks) == 3
    assert second.augmentations == 2 and first.augmentations == d.augmentations
    kept_all = load_mix(DataSettings(sources=d.sources, held_out=[], dedupe=False), quiet=True)
    assert [len(s.tasks) for s in kept_all] == [5, 5]
    clash = write_folder(tmp_path / "c", [type(tasks[6])(tasks[0].task_id, tasks[6].train, tasks[6].test)])
    with pytest.raises(MixError, match=tasks[0].task_id):
        load_mix(DataSettings(sources=[SourceSettings(path=str(a)), SourceSettings(path=str(clash))], held_out=[]))


def test_rearc_pair_lists_become_tasks_and_max_tasks_caps(tmp_path):
    pairs = [{"input": [[i % 10, 1]], "output": [[1, i % 10]]} for i in range(10)]
    (tmp_path / "re_arc").mkdir()
    (tmp_path / "re_arc" / "abc.json").write_text(json.dumps(pairs))
    d = DataSettings(sources=[SourceSettings(path=str(tmp_path / "re_arc"), pairs_per_task=3),
                              SourceSettings(synthetic=SyntheticSettings(rules=["rot180"], n_tasks=20),
                                             max_tasks=7)], held_out=[], dedupe=False)
    rearc, syn = load_mix(d, quiet=True)
    assert [t.task_id for t in rearc.tasks] == ["abc-00000", "abc-00001", "abc-00002"]
    assert all(len(t.train) == 2 and len(t.test) == 1 for t in rearc.tasks)
    assert syn.loaded == 20 and len(syn.tasks) == 7


def test_sources_table_is_read_from_toml_and_checked(tmp_path):
    good = tmp_path / "mix.toml"
    good.write_text('[data]\nheld_out = []\n[[data.sources]]\nname = "syn"\nweight = 2.0\naugmentations = 3\n'
                    '[data.sources.synthetic]\nrules = ["rot180"]\nn_tasks = 4\n')
    config = load_config(good)
    assert config.data.sources[0].weight == 2.0 and config.data.sources[0].synthetic.rules == ["rot180"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[data.sources]]\npath = "x"\nwieght = 2\n')
    with pytest.raises(SettingsError, match=r"data\.sources\[0\].*wieght"):
        load_config(bad)
    both = tmp_path / "both.toml"
    both.write_text('[[data.sources]]\npath = "x"\n[data.sources.synthetic]\nrules = ["rot180"]\n')
    with pytest.raises(SettingsError, match=r"data\.sources\[0\]: give either"):
        load_config(both)
    with pytest.raises(SettingsError, match=r"data\.sources\[0\]\.weight"):
        load_config(good, ["data.sources=[{weight = 0.0, synthetic = {rules = ['rot180']}}]"])


def test_weights_repeat_or_thin_a_source(arc_tokenizer):
    from arc_kit.training.dataset import SourcePlan, build_datasets

    a = generate_tasks(["rot180"], 6, seed=1)
    b = generate_tasks(["flip_lr"], 6, seed=2)
    plain = build_datasets([SourcePlan("a", a, 1), SourcePlan("b", b, 1)], arc_tokenizer, **ANSWER_ONLY, max_length=512,
                           eval_fraction=0.0)
    weighted = build_datasets([SourcePlan("a", a, 1, weight=2.0), SourcePlan("b", b, 1, weight=0.5)],
                              arc_tokenizer, **ANSWER_ONLY, max_length=512, eval_fraction=0.0)
    built = {s["name"]: s["train_rows_built"] for s in plain.sources}
    taken = {s["name"]: s["train_rows_taken"] for s in weighted.sources}
    assert taken == {"a": 2 * built["a"], "b": round(0.5 * built["b"])}
    assert len(weighted.train) == sum(taken.values())


def test_cached_build_equals_the_in_memory_one_and_is_reused(arc_tokenizer, tmp_path):
    from arc_kit.training.dataset import SourcePlan, build_datasets

    tasks = generate_tasks(["rot180", "flip_lr"], 12, seed=4)
    kw = dict(ANSWER_ONLY, max_length=512, eval_fraction=0.2, seed=1)
    memory = build_datasets([SourcePlan("s", tasks, 2)], arc_tokenizer, **kw)
    cached = build_datasets([SourcePlan("s", tasks, 2)], arc_tokenizer, cache_dir=str(tmp_path), num_proc=2, **kw)
    assert cached.train["input_ids"][:] == memory.train["input_ids"][:]
    assert cached.eval["task_id"][:] == memory.eval["task_id"][:]
    files = sorted(p.name for p in tmp_path.rglob("*.arrow"))
    again = build_datasets([SourcePlan("s", tasks, 2)], arc_tokenizer, cache_dir=str(tmp_path), num_proc=2, **kw)
    assert sorted(p.name for p in tmp_path.rglob("*.arrow")) == files  # read back, nothing rebuilt
    assert again.train["input_ids"][:] == memory.train["input_ids"][:]


# -- the public sets, by name ------------------------------------------------------------------------------------
def test_arc_agi_1_evaluation_held_out_refuses_its_copies_in_arc_agi_2_training(arc_files):
    [src] = load_mix(DataSettings(sources=[SourceSettings(path="arc-agi-2/training")],
                                  held_out=["arc-agi-1/evaluation"]), quiet=True)
    assert src.name == "arc-agi-2/training" and src.loaded == 1000
    same_ids = set(load_tasks(arc_files("arc-agi-1/evaluation")[0]).tasks) & set(
        load_tasks(arc_files("arc-agi-2/training")[0]).tasks)
    assert len(same_ids) == 376
    # 375 are the same task; one was edited in ARC-AGI-2 but still holds an ARC-AGI-1 evaluation answer
    assert same_ids <= set(src.refused_held_out) and len(src.tasks) == 1000 - len(src.refused_held_out)


def test_builtin_arc_agi_2_evaluation_digests_match_the_files_and_catch_a_disguised_copy(arc2_eval, tmp_path):
    tasks = list(load_tasks(*arc2_eval))
    write_held_out_digests(tasks, tmp_path / "digests.txt")
    shipped = REPO / "arc_kit" / "data" / "held_out" / "arc-agi-2-evaluation.txt"
    assert (tmp_path / "digests.txt").read_text() == shipped.read_text()
    folder = write_folder(tmp_path / "mine", [disguised(tasks[7], 5, "my-task"), *generate_tasks(["rot90"], 2)])
    [src] = load_mix(DataSettings(sources=[SourceSettings(path=str(folder))]), quiet=True)  # default held_out
    assert src.refused_held_out == ["my-task"] and len(src.tasks) == 2


@pytest.mark.slow
def test_bench_data_smoke_builds_every_source_and_prints_a_json_summary_last():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_data.py"), "--smoke", "--num-proc", "2"],
                          capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    results = {(r["source"], r["size"]): r for r in summary["results"]}
    assert summary["bench"] == "bench_data" and sorted(results) == [
        ("chat", 200), ("chat", 400), ("jsonl", 100), ("synthetic", 300), ("synthetic", 600)]
    assert all(r["examples_per_s"] > 0 and r["peak_rss_main_mb"] > 0 for r in results.values())
    assert results["chat", 400]["examples"] == 400  # rows used as given: one example each
    assert results["jsonl", 100]["examples"] == 100 * 4  # the test pair and 3 leave-one-out targets per problem
    assert results["chat", 200]["first_row"]["text_head"].startswith("<|im_start|>user\n")
    assert set(summary["peak_rss_main_growth"]) == {"chat", "synthetic"}


def test_the_held_out_digests_script_rebuilds_the_shipped_list():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(REPO / "scripts" / "held_out_digests.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["arc-agi-2-evaluation"] == {
        "set": "arc-agi-2/evaluation", "tasks": 120, "lines": 1171, "unchanged": True}


def test_every_source_of_a_mix_reaches_the_arrow_build_of_the_trainer(arc_tokenizer, tmp_path):
    """The trainer builds through the Arrow cache (``datasets`` shards a list of sources one per shard): each
    source's rows must keep their own source index, or every source after the first loses its rows and weight."""
    from arc_kit.core.formats import ARC_KIT_FORMAT
    from arc_kit.training.trainer import build_training_data, load_task_sets

    config = load_config(resolve_config_path("tiny-cpu"), [
        f"train.output_dir={tmp_path / 'run'}", "data.augmentations=1", "data.eval_fraction=0.0",
        "data.held_out=[]", "data.synthetic.rules=[]", "data.sources=[{name = 'a', synthetic = {rules = ['rot180'], n_tasks = 6}}, "
        "{name = 'b', weight = 3.0, synthetic = {rules = ['flip_lr'], n_tasks = 6}}]"])
    data = build_training_data(config, arc_tokenizer, ARC_KIT_FORMAT, load_task_sets(config))
    built = {s["name"]: s["train_rows_built"] for s in data.sources}
    taken = {s["name"]: s["train_rows_taken"] for s in data.sources}
    assert built["a"] > 0 and built["b"] > 0, data.sources
    assert taken == {"a": built["a"], "b": 3 * built["b"]} and len(data.train) == taken["a"] + taken["b"]
    assert sorted(set(data.train["source"])) == [0, 1]


def test_the_compact_table_finds_every_key_across_merges(monkeypatch):
    """The mix's bookkeeping at millions of tasks: keys merged into sorted arrays must still be found, with their
    values, and absent keys not."""
    from arc_kit.training.mix import U64Table

    monkeypatch.setattr(U64Table, "MERGE_AT", 7)
    table = U64Table()
    rng = random.Random(0)
    keys = list(dict.fromkeys(rng.getrandbits(64) for _ in range(100)))
    for n, key in enumerate(keys[:60]):
        table.put(key, value=n * 3, tag=n % 5)
    assert len(table._keys) >= 56  # most entries were merged into the sorted arrays
    assert [table.get(k) for k in keys[:60]] == [(n * 3, n % 5) for n in range(60)]
    assert not any(k in table for k in keys[60:])
