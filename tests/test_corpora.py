"""The published corpora's layouts as training sources: each read, guarded, trained on; bad rows named.

One fixture writes a small corpus in each layout (NVARC's augmented chat rows saved with ``save_to_disk``, NVARC's
synthetic pair lists in nested folders, BARC's JSON lines, ConceptARC's task files), each hiding one ARC-AGI-2
evaluation task (rotated, recoloured, its pairs re-ordered, under another name) and one malformed row or file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_training_mix import disguised

from arc_kit.config.training import DataSettings, SourceSettings
from arc_kit.core.synthetic import generate_tasks
from arc_kit.core.tasks import Task, TaskFileError, load_tasks, task_to_json
from arc_kit.training.mix import MixError, load_mix
from arc_kit.training.readers import detect_kind, task_to_messages

REPO = Path(__file__).resolve().parents[1]
PAIRS_PER_TASK = 3
LAYOUTS = {  # source name -> (path below the corpus root, kind it must be found as)
    "nvarc-augmented": ("nvarc-augmented-puzzles", "chat"),
    "nvarc-synthetic": ("nvarc-synthetic-puzzles", "pair_lists"),
    "arc-heavy": ("barc/heavy.jsonl", "jsonl"),
    "concept-arc": ("ConceptARC/corpus", "task_files"),
}


def _grid_json(grid):
    return [list(r) for r in grid]


def _pairs_json(task: Task):
    return [{"input": _grid_json(p.input), "output": _grid_json(p.output)} for p in (*task.train, *task.test)]


@pytest.fixture(scope="module")
def hidden(arc2_eval) -> Task:
    """The smallest ARC-AGI-2 evaluation task, disguised: what the default held_out must refuse in any layout."""
    tasks = list(load_tasks(*arc2_eval))
    task = min(tasks, key=lambda t: sum(len(g) * len(g[0]) for p in (*t.train, *t.test) for g in (p.input, p.output)))
    return disguised(task, 3, "hidden")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, hidden) -> Path:
    """One small corpus per published layout, each with the hidden evaluation task and one bad row or file."""
    from datasets import Dataset

    root = tmp_path_factory.mktemp("corpora")
    # NVARC's augmented puzzles: save_to_disk folders per subset, rows {puzzle_name, messages}; in the evaluation
    # subset the pairs are shuffled, so the hidden task's test pair sits among the demonstrations
    chat = root / "nvarc-augmented-puzzles"
    rows = [{"puzzle_name": t.task_id, "messages": task_to_messages(t)}
            for t in generate_tasks(["rot180", "flip_lr"], 10, seed=21, sizes=[3], n_train=2)]
    rows.append({"puzzle_name": "broken", "messages": [{"role": "user", "content": "12\n3"},
                                                        {"role": "assistant", "content": "1"}] * 2})
    Dataset.from_list(rows).save_to_disk(str(chat / "mini"))
    shuffled = Task("hidden", (hidden.test[0], *hidden.train[1:]), (hidden.train[0],))
    Dataset.from_list([{"puzzle_name": "0934a4d8", "messages": task_to_messages(shuffled)}]).save_to_disk(
        str(chat / "arc2_evaluation6"))
    # NVARC's synthetic puzzles: one JSON list of pairs per puzzle, in folders by subset and seed puzzle
    synthetic = root / "nvarc-synthetic-puzzles"
    for n, task in enumerate(generate_tasks(["flip_ud", "transpose"], 4, seed=22, sizes=[3], n_train=5)):
        file = synthetic / "nvarc_training" / f"seed{n % 2}" / f"{task.task_id}.json"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(_pairs_json(task)))
    (synthetic / "nvarc_training" / "seed0" / "hidden.json").write_text(json.dumps(_pairs_json(hidden)))
    (synthetic / "nvarc_training" / "seed1" / "truncated.json").write_text('[{"input": [[1]], "outp')
    # BARC's ARC-Heavy: JSON lines {source, examples: [[input, output], ...], seeds}
    heavy = root / "barc" / "heavy.jsonl"
    heavy.parent.mkdir()
    lines = [{"source": "def main(grid): ...", "seeds": ["abc"],
              "examples": [[_grid_json(p.input), _grid_json(p.output)] for p in (*t.train, *t.test)]}
             for t in generate_tasks(["rot90", "recolour"], 8, seed=23, sizes=[3], n_train=2)]
    lines.insert(3, {"source": "", "seeds": [], "examples": [[_grid_json(p.input), _grid_json(p.output)] for p in
                                                             (*hidden.train[:1], *hidden.test, *hidden.train[1:])]})
    heavy.write_text("".join(json.dumps(line) + "\n" for line in lines[:5]) + "not json\n"
                     + "".join(json.dumps(line) + "\n" for line in lines[5:]))
    # ConceptARC: corpus/<concept>/<id>.json, test outputs inline
    concept = root / "ConceptARC" / "corpus"
    for n, task in enumerate(generate_tasks(["gravity_down", "flip_lr"], 6, seed=24, sizes=[3], n_train=2)):
        _write_task(concept / ("Gravity" if n % 2 else "Flips") / f"{task.task_id}.json", task)
    _write_task(concept / "Hidden" / "Hidden1.json", hidden)
    (concept / "Hidden" / "NoTest.json").write_text(json.dumps({"train": []}))
    return root


def _write_task(path: Path, task: Task) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = task_to_json(task)
    raw["test"] = [{"input": _grid_json(p.input), "output": _grid_json(p.output)} for p in task.test]
    path.write_text(json.dumps(raw))


def _sources(corpus: Path, **extra) -> list[SourceSettings]:
    return [SourceSettings(path=str(corpus / path), name=name, pairs_per_task=PAIRS_PER_TASK, **extra)
            for name, (path, _) in LAYOUTS.items()]


def _as_toml(sources: list[SourceSettings]) -> str:
    items = [f"{{name = '{s.name}', path = '{s.path}', pairs_per_task = {s.pairs_per_task}}}" for s in sources]
    return f"data.sources=[{', '.join(items)}]"


def test_each_layout_is_found_from_its_path(corpus):
    assert {name: detect_kind(str(corpus / path)) for name, (path, _) in LAYOUTS.items()} == {
        name: kind for name, (_, kind) in LAYOUTS.items()}
    assert detect_kind(str(corpus / "nvarc-augmented-puzzles" / "mini")) == "chat"  # one subset alone


def test_the_guard_refuses_the_hidden_evaluation_task_in_every_layout_and_bad_rows_are_skipped(corpus, hidden):
    mix = load_mix(DataSettings(sources=_sources(corpus), on_bad_row="skip", dedupe=False), quiet=True)
    report = {s.name: s.report() for s in mix}
    hidden_cuts = (len(hidden.train) + len(hidden.test)) // PAIRS_PER_TASK  # the pair list cut into tasks
    assert {n: r["refused_held_out"] for n, r in report.items()} == {
        "nvarc-augmented": 1, "nvarc-synthetic": hidden_cuts, "arc-heavy": 1, "concept-arc": 1}
    assert {n: r["kind"] for n, r in report.items()} == {n: kind for n, (_, kind) in LAYOUTS.items()}
    assert {n: r["bad_rows"] for n, r in report.items()} == dict.fromkeys(LAYOUTS, 1)
    # what is kept: every other row or file, two cuts of 3 pairs from each 6-pair list
    assert {n: r["kept"] for n, r in report.items()} == {
        "nvarc-augmented": 10, "nvarc-synthetic": 4 * 2, "arc-heavy": 8, "concept-arc": 6}
    assert all(t.task_id != "hidden" and "0934a4d8" not in t.task_id for s in mix for t in s.tasks)
    assert "mini row 10" in report["nvarc-augmented"]["bad_examples"][0]
    assert "heavy.jsonl line 6" in report["arc-heavy"]["bad_examples"][0]
    chat = mix[0].tasks[0]
    assert chat.task_id.startswith("mini/") and len(chat.train) == 2 and len(chat.test) == 1


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_a_bad_row_fails_in_one_line_naming_it_by_default(corpus, name):
    [source] = [s for s in _sources(corpus) if s.name == name]
    with pytest.raises(TaskFileError) as caught:
        load_mix(DataSettings(sources=[source], held_out=[]), quiet=True)
    message = str(caught.value)
    assert "\n" not in message and name in message and "on_bad_row = skip" in message
    assert any(bad in message for bad in ("row 10", "truncated.json", "line 6", "NoTest.json"))


def test_worker_processes_read_the_same_mix_as_one_process(corpus):
    one, two = (load_mix(DataSettings(sources=_sources(corpus), on_bad_row="skip", num_proc=n), quiet=True)
                for n in (1, 2))
    assert [s.report() for s in one] == [s.report() for s in two]
    assert [[t.task_id for t in s.tasks] for s in one] == [[t.task_id for t in s.tasks] for s in two]


def test_max_tasks_takes_a_seeded_share_of_a_streamed_source(corpus):
    capped = _sources(corpus, max_tasks=3)
    mix = load_mix(DataSettings(sources=capped, on_bad_row="skip", held_out=[]), quiet=True)
    assert [len(s.tasks) <= 3 for s in mix] == [True] * 4 and sum(len(s.tasks) for s in mix) >= 8
    again = load_mix(DataSettings(sources=capped, on_bad_row="skip", held_out=[]), quiet=True)
    assert [[t.task_id for t in s.tasks] for s in again] == [[t.task_id for t in s.tasks] for s in mix]


def test_chat_rows_used_as_given_render_exactly_as_nvarc_wrote_them(corpus, nvarc_published_dir):
    from arc_kit.core.formats import NVARC_FORMAT
    from arc_kit.models.loading import load_tokenizer
    from arc_kit.training.dataset import SourcePlan, build_datasets

    tokenizer = load_tokenizer(nvarc_published_dir, local_only=True)
    source = SourceSettings(path=str(corpus / "nvarc-augmented-puzzles" / "mini"), rows="as_given")
    [src] = load_mix(DataSettings(sources=[source], on_bad_row="skip", held_out=[]), quiet=True)
    assert src.as_given and src.report()["rows"] == "as_given"
    from datasets import load_from_disk

    written = load_from_disk(str(corpus / "nvarc-augmented-puzzles" / "mini"))
    expected = ["".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>" for m in row["messages"])
                for row in written.select(range(10))]
    plan = [SourcePlan(src.name, src.tasks, augmentations=8, as_given=True)]  # views are not applied as given
    for loss_on, learnt_turns in (("all_outputs", 3), ("answer", 1)):
        built = build_datasets(plan, tokenizer, prompt_format=NVARC_FORMAT, loss_on=loss_on, max_length=512,
                               eval_fraction=0.0)
        assert sorted(built.train["text"]) == sorted(expected)  # one row per chat row, as written
        row = built.train[0]
        learnt = tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"], strict=True)
                                   if label != -100])
        assert learnt.count("<|im_end|>") == learnt_turns


# -- trained through the real path ---------------------------------------------------------------------------------
def _pretrain(out: Path, overrides: list[str]) -> dict:
    args = [sys.executable, str(REPO / "scripts" / "pretrain.py"), "--config", "tiny-cpu"]
    for item in [*overrides, f"train.output_dir={out}", "train.max_steps=2", "train.per_device_train_batch_size=4",
                 "train.save_steps=100", "data.eval_fraction=0.0", "data.augmentations=1", "data.synthetic.rules=[]",
                 "data.on_bad_row=skip"]:
        args += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "run_info.json").read_text())


def test_every_layout_trains_the_tiny_model_through_pretrain(corpus, tmp_path):
    info = _pretrain(tmp_path / "run", [_as_toml(_sources(corpus))])
    mix = {m["name"]: m for m in info["data"]["mix"]}
    assert info["steps"] == 2
    assert {n: (m["kind"], m["refused_held_out"] > 0, m["bad_rows"], m["train_rows_taken"] > 0)
            for n, m in mix.items()} == {n: (kind, True, 1, True) for n, (_, kind) in LAYOUTS.items()}


def test_nvarc_rows_as_given_keep_training_an_nvarc_model(corpus, tmp_path, nvarc_published_dir):
    chat = corpus / "nvarc-augmented-puzzles"
    info = _pretrain(tmp_path / "run", [
        f"model.name_or_path={nvarc_published_dir}", "model.format=nvarc", "model.dtype=float32",
        "model.local_files_only=true", "data.loss_on=all_outputs",
        f"data.sources=[{{path = '{chat}', rows = 'as_given'}}]"])
    [mix] = info["data"]["mix"]
    assert info["prompt_format"] == "nvarc" and info["steps"] == 2
    assert (mix["kind"], mix["rows"], mix["refused_held_out"], mix["kept"]) == ("chat", "as_given", 1, 10)
    assert mix["train_rows_taken"] == 10  # one example per row: no views, no leave-one-out


def test_the_nvarc_continue_config_reads_nvarc_subsets_as_given_and_refuses_the_evaluation_rows(
        tmp_path, monkeypatch, hidden):
    from datasets import Dataset

    from arc_kit.config.training import load_config, resolve_config_path

    subsets = ["arc2_training", "concept", "mini", "rearc", "nvarc_training", "nvarc_full", "arc2_evaluation6"]
    for n, subset in enumerate(subsets):
        tasks = generate_tasks(["rot180", "flip_ud"], 3, seed=40 + n, sizes=[3], n_train=2)
        if subset in ("rearc", "arc2_evaluation6"):
            tasks.append(hidden)
        Dataset.from_list([{"puzzle_name": t.task_id, "messages": task_to_messages(t)} for t in tasks]).save_to_disk(
            str(tmp_path / "data" / "nvarc-augmented-puzzles" / subset))
    monkeypatch.chdir(tmp_path)  # the config's paths are relative: data/nvarc-augmented-puzzles/<subset>
    config = load_config(resolve_config_path("nvarc-continue"))
    assert (config.model.format, config.data.loss_on, config.lora.use_rslora) == ("nvarc", "all_outputs", True)
    assert (config.train.learning_rate, config.train.per_device_train_batch_size, config.train.num_train_epochs) == (
        1e-4, 16, 2)
    mix = load_mix(config.data, quiet=True)
    assert [s.name for s in mix] == subsets[:6]  # the evaluation subset is not a source
    assert all(s.kind == "chat" and s.as_given and len(s.tasks) == 3 for s in mix)
    assert {s.name: len(s.refused_held_out) for s in mix if s.refused_held_out} == {"rearc": 1}


def _chat_folder(path: Path, n: int = 3) -> Path:
    from datasets import Dataset

    rows = [{"puzzle_name": t.task_id, "messages": task_to_messages(t)}
            for t in generate_tasks(["rot180"], n, seed=31, sizes=[3], n_train=2)]
    Dataset.from_list(rows).save_to_disk(str(path))
    return path


def _problem_line(task: Task) -> bytes:
    examples = [[_grid_json(p.input), _grid_json(p.output)] for p in (*task.train, *task.test)]
    return (json.dumps({"examples": examples}) + "\n").encode()


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_damaged_arrow_file_is_one_line_when_the_source_is_counted_for_max_tasks(tmp_path, damage):
    folder = _chat_folder(tmp_path / "chat")
    [arrow] = folder.glob("*.arrow")
    if damage == "missing":
        arrow.unlink()
    else:
        arrow.write_bytes(arrow.read_bytes()[:200])
    with pytest.raises(TaskFileError, match=arrow.name) as caught:
        load_mix(DataSettings(sources=[SourceSettings(path=str(folder), max_tasks=1)], held_out=[]), quiet=True)
    assert "\n" not in str(caught.value)


def test_a_corrupt_gzip_file_is_one_line_naming_it(tmp_path):
    import gzip

    lines = b"".join(_problem_line(t) for t in generate_tasks(["rot180"], 3, seed=32, sizes=[3], n_train=2))
    packed = bytearray(gzip.compress(lines))
    for i in range(20, 60):
        packed[i] ^= 0x5A
    file = tmp_path / "heavy.jsonl.gz"
    file.write_bytes(bytes(packed))
    for on_bad_row in ("fail", "skip"):
        with pytest.raises(TaskFileError, match="heavy.jsonl.gz"):
            load_mix(DataSettings(sources=[SourceSettings(path=str(file))], held_out=[], on_bad_row=on_bad_row),
                     quiet=True)


def test_a_line_that_is_not_utf8_or_nested_too_deep_is_a_bad_row(tmp_path):
    tasks = generate_tasks(["rot180"], 3, seed=33, sizes=[3], n_train=2)
    file = tmp_path / "heavy.jsonl"
    file.write_bytes(b"\xef\xbb\xbf" + _problem_line(tasks[0]) + b"\xff\xfe\n" + _problem_line(tasks[1])
                     + b"[" * 100_000 + b"\n" + _problem_line(tasks[2]))
    [source] = load_mix(DataSettings(sources=[SourceSettings(path=str(file))], held_out=[], on_bad_row="skip"),
                        quiet=True)
    report = source.report()
    assert (report["kept"], report["bad_rows"]) == (3, 2)
    assert "line 2" in report["bad_examples"][0] and "line 4" in report["bad_examples"][1]
    with pytest.raises(TaskFileError, match="heavy.jsonl line 2"):
        load_mix(DataSettings(sources=[SourceSettings(path=str(file))], held_out=[]), quiet=True)


def test_json_lines_files_of_one_stem_keep_apart_ids(tmp_path):
    tasks = generate_tasks(["rot180", "flip_lr"], 3, seed=34, sizes=[3], n_train=2)
    folder = tmp_path / "lines"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes(_problem_line(tasks[0]))
    (folder / "a.ndjson").write_bytes(_problem_line(tasks[1]))
    import gzip

    (folder / "a.jsonl.gz").write_bytes(gzip.compress(_problem_line(tasks[2])))
    [source] = load_mix(DataSettings(sources=[SourceSettings(path=str(folder))], held_out=[], dedupe=False),
                        quiet=True)
    ids = [t.task_id for t in source.tasks]
    assert len(ids) == 3 and len(set(ids)) == 3


def test_a_source_that_yields_no_tasks_is_named(tmp_path, caplog):
    tasks = generate_tasks(["rot180"], 2, seed=35, sizes=[3], n_train=2)
    short = tmp_path / "short"
    short.mkdir()
    (short / "one.json").write_text(json.dumps(_pairs_json(tasks[0])[:1]))  # fewer pairs than a task
    good = tmp_path / "good"
    _write_task(good / "t.json", tasks[1])
    empty = SourceSettings(path=str(short), name="too-short", kind="pair_lists", pairs_per_task=4)
    with caplog.at_level("WARNING", logger="arc_kit.training.mix"):
        load_mix(DataSettings(sources=[SourceSettings(path=str(good), kind="task_files"), empty], held_out=[]))
    assert any("too-short" in r.getMessage() and "no tasks" in r.getMessage() for r in caplog.records)
    with pytest.raises(MixError) as caught:  # alone: the error says what each source held
        load_mix(DataSettings(sources=[empty], held_out=[]), quiet=True)
    assert "too-short" in str(caught.value) and "0 read" in str(caught.value)


def test_a_missing_source_path_names_the_source(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = SourceSettings(path="data/nvarc-augmented-puzzles/arc2_training", name="arc2_training")
    with pytest.raises(TaskFileError) as caught:
        load_mix(DataSettings(sources=[source], held_out=[]), quiet=True)
    assert str(caught.value).startswith("data source arc2_training: ") and str(tmp_path) in str(caught.value)
