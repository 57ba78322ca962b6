"""Prompt formats (arc_kit.core.formats): NVARC's layout character for character and token for token, the labels
of both loss modes in both formats, fitting long tasks, which format a folder speaks, and that a published
NVARC-layout folder loads, prints and answers with the kit."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
from test_cli import one_error_line

from arc_kit.core.examples import IGNORE_INDEX, tokenize_example
from arc_kit.core.formats import (
    ARC_KIT_FORMAT,
    FORMAT_NAMES,
    LOSS_ON,
    NVARC_FORMAT,
    FormatError,
    answer_token_ids,
    detect_format,
    fit_for_tokenizer,
)
from arc_kit.core.tasks import Pair, Task
from arc_kit.core.text import grid_to_text

TASK = Task("fixed", (Pair(((1, 2), (3, 4)), ((5,), (6,))), Pair(((7, 8, 9),), ((0, 0, 1),))),
            (Pair(((2, 0), (0, 2)), ((4,), (4,))),))
NVARC_PROMPT = ("<|im_start|>user\n12\n34<|im_end|><|im_start|>assistant\n5\n6<|im_end|>"
                "<|im_start|>user\n789<|im_end|><|im_start|>assistant\n001<|im_end|>"
                "<|im_start|>user\n20\n02<|im_end|><|im_start|>assistant\n")


@pytest.fixture(scope="module")
def nvarc_tokenizer():
    from arc_kit.models.vocab import nvarc_tokenizer

    return nvarc_tokenizer()


def test_the_settings_name_the_formats_the_kit_knows():
    from arc_kit.config.run import FormatChoice, LossOn

    assert typing.get_args(FormatChoice) == ("auto", *FORMAT_NAMES)
    assert typing.get_args(LossOn) == LOSS_ON


def test_nvarc_prompt_is_the_published_layout_character_for_character(nvarc_tokenizer):
    rendered = NVARC_FORMAT.render(nvarc_tokenizer, TASK.train, TASK.test[0].input, TASK.test[0].output)
    assert rendered.prompt == NVARC_PROMPT
    assert rendered.completion == "4\n4<|im_end|>"
    assert NVARC_FORMAT.parse_answer(rendered.completion) == ((4,), (4,))
    # NVARC's own token stream for a one-pair task (notes: [14, 11, 10, 1, 2, 10, 3, 4, 15, 14, 12, 10, 5, 10, 6, 15])
    one = NVARC_FORMAT.render(nvarc_tokenizer, [], ((1, 2), (3, 4)), ((5,), (6,)))
    ids = nvarc_tokenizer(one.text, add_special_tokens=False)["input_ids"]
    assert ids == [14, 11, 10, 1, 2, 10, 3, 4, 15, 14, 12, 10, 5, 10, 6, 15]
    assert answer_token_ids(nvarc_tokenizer, NVARC_FORMAT) == (list(range(11)), [15])  # digits, newline; im_end


def learnt_text(tokenizer, row) -> list[str]:  # noqa: ANN001
    """The labelled stretches of a row, decoded, in order."""
    runs, current = [], []
    for token, label in zip(row["input_ids"], row["labels"], strict=True):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(r, skip_special_tokens=False) for r in runs]


def test_nvarc_labels_every_assistant_turn_with_all_outputs(nvarc_tokenizer):
    target = TASK.test[0]
    every = tokenize_example(nvarc_tokenizer, NVARC_FORMAT, TASK.train, target, loss_on="all_outputs")
    assert learnt_text(nvarc_tokenizer, every) == ["5\n6<|im_end|>", "001<|im_end|>", "4\n4<|im_end|>"]
    # NVARC's collator: never a turn marker, a role word or the newline after it
    assert not {11, 12, 14} & {t for t, lab in zip(every["input_ids"], every["labels"], strict=True)
                               if lab != IGNORE_INDEX}
    answer = tokenize_example(nvarc_tokenizer, NVARC_FORMAT, TASK.train, target, loss_on="answer")
    assert learnt_text(nvarc_tokenizer, answer) == ["4\n4<|im_end|>"]
    assert answer["input_ids"] == every["input_ids"] == nvarc_tokenizer(NVARC_PROMPT + "4\n4<|im_end|>",
                                                                        add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("which", ["arc", "qwen"])
def test_arc_kit_labels_the_demonstration_outputs_with_all_outputs(which, arc_tokenizer, qwen_tokenizer):
    tokenizer = arc_tokenizer if which == "arc" else qwen_tokenizer
    target = TASK.test[0]
    every = tokenize_example(tokenizer, ARC_KIT_FORMAT, TASK.train, target, loss_on="all_outputs")
    runs = learnt_text(tokenizer, every)
    assert runs[:2] == [grid_to_text(p.output) for p in TASK.train]
    assert runs[2].startswith(grid_to_text(target.output)) and "<|im_end|>" in runs[2] and len(runs) == 3
    answer = tokenize_example(tokenizer, ARC_KIT_FORMAT, TASK.train, target, loss_on="answer")
    assert learnt_text(tokenizer, answer) == runs[2:] and answer["input_ids"] == every["input_ids"]


def test_fitting_drops_the_largest_pairs_first_in_nvarc_too(nvarc_tokenizer):
    big = tuple(tuple((r + c) % 10 for c in range(30)) for r in range(30))
    small = ((1, 2), (3, 4))
    task = Task("long", (Pair(small, small), Pair(big, big), Pair(small, small), Pair(big, big)), (Pair(big, big),))
    fitted = fit_for_tokenizer(nvarc_tokenizer, NVARC_FORMAT, task, 0, max_length=3000)
    assert fitted.fits and fitted.dropped == 2 and all(p.input == small for p in fitted.train)
    assert fitted.reserved_tokens == 30 * 31  # 30 rows: 29 newlines and <|im_end|> after 900 cells
    prompt = NVARC_FORMAT.render(nvarc_tokenizer, fitted.train, big).prompt
    assert fitted.prompt_ids == tuple(nvarc_tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert fitted.prompt_tokens + fitted.reserved_tokens <= 3000


def test_which_format_a_folder_speaks(nvarc_published_dir: Path, tiny_model_dir: Path, tmp_path: Path):
    from arc_kit.models.loading import load_tokenizer, resolve_format
    from arc_kit.models.manifest import MANIFEST_FILE

    nvarc = load_tokenizer(nvarc_published_dir, local_only=True)
    arc = load_tokenizer(tiny_model_dir, local_only=True)
    assert detect_format(nvarc) == "nvarc" and detect_format(arc) is None
    assert resolve_format("auto", nvarc_published_dir, nvarc) is NVARC_FORMAT
    assert resolve_format("auto", tiny_model_dir, arc) is ARC_KIT_FORMAT
    assert resolve_format("nvarc", tiny_model_dir, arc) is NVARC_FORMAT  # no manifest: the flag names it
    with pytest.raises(FormatError, match="cannot write the arc-kit format"):
        resolve_format("arc-kit", nvarc_published_dir, nvarc)  # its vocabulary has no words
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({"prompt_format": "arc-kit"}))
    assert resolve_format("auto", tmp_path, arc) is ARC_KIT_FORMAT
    with pytest.raises(FormatError, match="contradicts the weights' manifest"):
        resolve_format("nvarc", tmp_path, arc)
    old = "arc_kit.core.text.render (chat template; tokenize with add_special_tokens=False)"
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({"prompt_format": old}))  # an export made before formats
    assert resolve_format("auto", tmp_path, arc) is ARC_KIT_FORMAT


def test_the_published_tokenizer_loads_with_its_words(nvarc_published_dir: Path):
    """transformers 5's AutoTokenizer builds these files as a BPE model without merges and drops user/assistant;
    the kit reads tokenizer.json as written."""
    from arc_kit.models.loading import load_tokenizer

    tokenizer = load_tokenizer(nvarc_published_dir, local_only=True)
    assert tokenizer("<|im_start|>user\n1<|im_end|>", add_special_tokens=False)["input_ids"] == [14, 11, 10, 1, 15]
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id, len(tokenizer)) == (15, 13, 16)


def test_arc_kit_prompt_prints_both_formats(nvarc_published_dir: Path, arc_files, capsys):
    from arc_kit.cli.main import main
    from arc_kit.core.tasks import load_tasks

    challenges, solutions = arc_files("arc-agi-1/training")
    task = next(iter(load_tasks(challenges, solutions)))
    assert main(["prompt", "arc-agi-1/training", task.task_id, "--format", "nvarc"]) == 0
    out = capsys.readouterr().out
    assert out == NVARC_FORMAT.render(None, task.train, task.test[0].input).prompt
    assert main(["prompt", "arc-agi-1/training", task.task_id, "--model", str(nvarc_published_dir), "--ids",
                 "--answer", "--solutions", "arc-agi-1/training"]) == 0
    out = capsys.readouterr().out
    expected = NVARC_FORMAT.render(None, task.train, task.test[0].input, task.test[0].output).text
    assert out.startswith(expected)
    ids = out[len(expected):].split()
    assert ids[:3] == ["14", "11", "10"] and ids[-1] == "15"  # the words survive: NVARC's ids
    assert main(["prompt", "arc-agi-1/training", task.task_id]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<|im_start|>user\nInput:\n") and out.endswith("Test output:<|im_end|>\n"
                                                                             "<|im_start|>assistant\n")
    assert main(["prompt", "arc-agi-1/training", "nope"]) == 2
    assert main(["prompt", "arc-agi-1/training", task.task_id, "--model", str(nvarc_published_dir),
                 "--format", "arc-kit"]) == 2  # one or the other


def test_tokens_counts_in_the_folders_format(nvarc_published_dir: Path, capsys):
    from arc_kit.cli.main import main

    assert main(["tokens", "arc-agi-2/evaluation", "--tokenizer", str(nvarc_published_dir), "--json"]) == 0
    by_folder = json.loads(capsys.readouterr().out)
    assert main(["tokens", "arc-agi-2/evaluation", "--tokenizer", "nvarc", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_tokens"] == by_folder["total_tokens"]
    assert main(["tokens", "arc-agi-2/evaluation", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_tokens"] > by_folder["total_tokens"]  # words cost tokens


def test_ttt_rows_in_nvarc_learn_every_output(nvarc_tokenizer):
    from arc_kit.config.run import TTTSettings
    from arc_kit.solve.ttt import ttt_examples

    task = Task("t", (*TASK.train, Pair(((3,),), ((4,),))), TASK.test)
    rows = ttt_examples(task, nvarc_tokenizer, NVARC_FORMAT, TTTSettings(max_samples=6, loss_on="all_outputs"))
    assert len(rows) == 6
    for row in rows:
        runs = learnt_text(nvarc_tokenizer, row)
        assert len(runs) == 1 + len(row["context_indices"]) and all(r.endswith("<|im_end|>") for r in runs)
        assert "20\n02" not in nvarc_tokenizer.decode(row["input_ids"])  # no test input in a TTT row


@pytest.mark.slow
def test_dry_run_answers_with_a_published_layout_folder(nvarc_published_dir: Path, arc2_eval, tmp_path: Path):
    """No manifest, NVARC's 16 tokens: the folder is recognised as nvarc and every task gets an answer with the
    kit's TTT, search and re-scoring (a random model's answers are wrong, not errors)."""
    from arc_kit.cli.main import main
    from arc_kit.config.run import SolverSettings
    from arc_kit.solve.solver import load_solver

    solver = load_solver(nvarc_published_dir, SolverSettings(device="cpu"))
    assert solver.prompt_format is NVARC_FORMAT and solver.tokenizer.eos_token_id == 15
    code = main(["dry-run", "--model", str(nvarc_published_dir), "--challenges", str(arc2_eval[0]),
                 "--solutions", str(arc2_eval[1]), "--out", str(tmp_path / "out"), "--max-tasks", "2",
                 "--views", "2", "--scoring-views", "2", "--ttt-max-samples", "2", "--device", "cpu",
                 "--budget-seconds", "600"])
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["model_error"] is None and report["tasks_attempted"] == 2, report
    attempted = [report["per_task"][t] for t in report["attempted_ids"]]
    assert all(r["error"] is None for r in attempted), attempted
    assert all(r["ttt"] and r["ttt"]["samples"] > 0 for r in attempted), attempted


def test_a_format_flag_the_weights_contradict_is_refused_in_one_line(nvarc_published_dir: Path, arc2_eval,
                                                                      tmp_path: Path, capsys):
    from arc_kit.cli.main import main

    code = main(["dry-run", "--model", str(nvarc_published_dir), "--challenges", str(arc2_eval[0]),
                 "--out", str(tmp_path / "out"), "--format", "arc-kit", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "cannot write the arc-kit format" in err, err
    assert not (tmp_path / "out" / "submission.json").exists()  # refused before the run


# ---- bad input to `arc-kit prompt`: one line naming the file or flag, exit 2, never a traceback


@pytest.mark.parametrize("damage", ["truncated", "missing", "not json", "empty vocabulary"])
def test_prompt_with_a_broken_tokenizer_is_one_line(tiny_model_dir: Path, tmp_path: Path, capsys, damage):
    import shutil

    from arc_kit.cli.main import main

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    tokenizer = folder / "tokenizer.json"
    if damage == "truncated":
        tokenizer.write_text(tokenizer.read_text()[:100])
    elif damage == "missing":
        tokenizer.unlink()
    elif damage == "not json":
        tokenizer.write_bytes(b"\xff\xfe not json")
    else:
        tokenizer.write_text(json.dumps({"model": {"type": "WordLevel", "vocab": {}, "unk_token": "x"}}))
    assert main(["prompt", "arc-agi-1/training", "007bbfb7", "--model", str(folder)]) == 2
    one_error_line(capsys, str(folder))


def test_prompt_names_a_file_given_for_the_weights_folder_and_refuses_a_nonsense_length(tiny_model_dir: Path,
                                                                                         capsys):
    from arc_kit.cli.main import main

    assert main(["prompt", "arc-agi-1/training", "007bbfb7", "--model", str(tiny_model_dir / "config.json")]) == 2
    line = one_error_line(capsys, "config.json", "is a file")
    assert "does not exist" not in line
    for length in ("0", "-5"):
        assert main(["prompt", "arc-agi-1/training", "007bbfb7", "--max-length", length]) == 2
        one_error_line(capsys, "--max-length", length)
    assert capsys.readouterr().out == ""


def test_a_shrunk_model_whose_manifest_names_another_format_is_refused(nvarc_published_dir: Path, qwen_tokenizer,
                                                                         tmp_path: Path, capsys):
    """A vocabulary shrunk to one format's tokens, with a manifest (edited, or copied from another folder) that names
    the other: the weights learnt one format, and prompts in the other would be answered with nonsense."""
    import shutil

    from qwen3_models import write_qwen3_model

    from arc_kit.cli.main import main
    from arc_kit.models.loading import load_tokenizer, resolve_format
    from arc_kit.models.manifest import MANIFEST_FILE

    arc_kit_shrunk = tmp_path / "arc-kit"  # really shrunk: its few dozen tokens can write nvarc's layout too
    full = write_qwen3_model(tmp_path / "full", hidden_size=16, layers=1, tokenizer=qwen_tokenizer)
    assert main(["shrink-vocab", str(full), "--out", str(arc_kit_shrunk), "--format", "arc-kit"]) == 0
    nvarc_shrunk = shutil.copytree(nvarc_published_dir, tmp_path / "nvarc")  # NVARC's 16 tokens, shrunk
    (nvarc_shrunk / MANIFEST_FILE).write_text(json.dumps({"prompt_format": "nvarc", "vocabulary": {"kept": 16}}))
    for out, shrunk_to, other in ((arc_kit_shrunk, "arc-kit", "nvarc"), (nvarc_shrunk, "nvarc", "arc-kit")):
        tokenizer = load_tokenizer(out, local_only=True)
        assert resolve_format("auto", out, tokenizer).name == shrunk_to
        manifest = json.loads((out / MANIFEST_FILE).read_text())
        (out / MANIFEST_FILE).write_text(json.dumps({**manifest, "prompt_format": other}))
        with pytest.raises(FormatError, match=f"shrunk to the {shrunk_to} format's tokens.*manifest records {other}"):
            resolve_format("auto", out, tokenizer)
        capsys.readouterr()
        assert main(["prompt", "arc-agi-1/training", "007bbfb7", "--model", str(out)]) == 2
        one_error_line(capsys, str(out), shrunk_to, other)
