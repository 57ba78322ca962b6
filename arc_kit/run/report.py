"""Pictures of tasks and attempts (PNG, the usual ARC palette) and the HTML report of a dry run or demo.

Drawn with Pillow alone, so a Kaggle kernel or CI can render them without a plotting stack.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arc_kit.core.tasks import Grid, Task
from arc_kit.run.records import time_lines

# The palette of the ARC testing interface.
PALETTE: dict[int, tuple[int, int, int]] = {
    0: (0x00, 0x00, 0x00),  # black
    1: (0x00, 0x74, 0xD9),  # blue
    2: (0xFF, 0x41, 0x36),  # red
    3: (0x2E, 0xCC, 0x40),  # green
    4: (0xFF, 0xDC, 0x00),  # yellow
    5: (0xAA, 0xAA, 0xAA),  # grey
    6: (0xF0, 0x12, 0xBE),  # magenta
    7: (0xFF, 0x85, 0x1B),  # orange
    8: (0x7F, 0xDB, 0xFF),  # light blue
    9: (0x87, 0x0C, 0x25),  # maroon
}
BACKGROUND = (255, 255, 255)
GRID_LINE = (85, 85, 85)
RIGHT = (46, 160, 67)
WRONG = (207, 34, 46)
TEXT = (30, 30, 30)


@dataclass(frozen=True)
class Panel:
    """One grid with a caption; ``verdict`` True/False draws a green/red frame (an attempt marked right/wrong)."""

    grid: Grid
    caption: str
    verdict: bool | None = None


def _font(size: int = 12):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def _cell_size(grids: Sequence[Grid], max_px: int = 240) -> int:
    side = max(max(len(g), len(g[0])) for g in grids)
    return max(4, min(24, max_px // side))


def draw_panels(rows: Sequence[Sequence[Panel]], title: str = ""):
    """Lay panels out in rows (one row per pair) and return a PIL image."""
    from PIL import Image, ImageDraw

    cell = _cell_size([p.grid for row in rows for p in row])
    pad, caption_h, frame = 12, 16, 3
    title_h = 22 if title else 0

    caption_font = _font(11)

    def panel_size(p: Panel) -> tuple[int, int]:
        grid_w = len(p.grid[0]) * cell + 2 * frame
        return max(grid_w, int(caption_font.getlength(p.caption)) + 4), len(p.grid) * cell + 2 * frame + caption_h

    width = max(sum(panel_size(p)[0] + pad for p in row) + pad for row in rows)
    height = title_h + sum(max(panel_size(p)[1] for p in row) + pad for row in rows) + pad
    image = Image.new("RGB", (max(width, 200), height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((pad, 4), title, fill=TEXT, font=_font(14))
    y = title_h + pad
    for row in rows:
        x = pad
        for p in row:
            w, h = panel_size(p)
            draw.text((x, y), p.caption, fill=RIGHT if p.verdict else WRONG if p.verdict is False else TEXT,
                      font=caption_font)
            gx, gy = x + frame, y + caption_h + frame
            if p.verdict is not None:
                grid_w = len(p.grid[0]) * cell + 2 * frame
                draw.rectangle([x, y + caption_h, x + grid_w - 1, y + h - 1], outline=RIGHT if p.verdict else WRONG,
                               width=frame)
            for r, line in enumerate(p.grid):
                for c, colour in enumerate(line):
                    x0, y0 = gx + c * cell, gy + r * cell
                    draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=PALETTE[colour],
                                   outline=GRID_LINE if cell >= 8 else None)
            x += w + pad
        y += max(panel_size(p)[1] for p in row) + pad
    return image


def task_panels(task: Task, attempts: Sequence[Mapping[str, Any]] | None = None) -> list[list[Panel]]:
    """Train pairs, then per test input: the input, the expected output when known, and both attempts."""
    rows = [[Panel(p.input, f"train {i} in"), Panel(p.output, f"train {i} out")] for i, p in enumerate(task.train)]
    for i, pair in enumerate(task.test):
        row = [Panel(pair.input, f"test {i} in")]
        if pair.output is not None:
            row.append(Panel(pair.output, f"test {i} expected"))
        if attempts is not None and i < len(attempts):
            for name in ("attempt_1", "attempt_2"):
                grid = tuple(tuple(r) for r in attempts[i][name])
                verdict = None if pair.output is None else grid == pair.output
                mark = "" if verdict is None else (" right" if verdict else " wrong")
                row.append(Panel(grid, f"{name}{mark}", verdict))
        rows.append(row)
    return rows


def draw_task(task: Task, attempts: Sequence[Mapping[str, Any]] | None = None):
    return draw_panels(task_panels(task, attempts), title=f"task {task.task_id}")


def save_task_png(task: Task, out: str | Path, attempts: Sequence[Mapping[str, Any]] | None = None) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    draw_task(task, attempts).save(out)
    return out


# ---------------------------------------------------------------------------------------------------------------
# The HTML report


def read_loss_log(path: str | Path | None) -> list[dict[str, Any]]:
    """Rows of the training log (JSON lines with ``step`` and ``loss`` and/or ``eval_loss``); [] when absent."""
    if not path or not Path(path).exists():
        return []
    rows = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def loss_curve_svg(log: Sequence[Mapping[str, Any]], width: int = 560, height: int = 220) -> str:
    """Training (blue) and eval (orange) loss against step, as inline SVG."""
    series = {
        key: [(float(r["step"]), float(r[key])) for r in log if r.get(key) is not None and "step" in r]
        for key in ("loss", "eval_loss")
    }
    points = [p for s in series.values() for p in s]
    if not points:
        return "<p>No training log.</p>"
    x_max = max(x for x, _ in points) or 1.0
    y_min, y_max = min(y for _, y in points), max(y for _, y in points)
    y_span = (y_max - y_min) or 1.0
    m = 36

    def xy(x: float, y: float) -> str:
        return f"{m + x / x_max * (width - 2 * m):.1f},{height - m - (y - y_min) / y_span * (height - 2 * m):.1f}"

    lines = []
    for key, colour in (("loss", "#0074D9"), ("eval_loss", "#FF851B")):
        if series[key]:
            pts = " ".join(xy(x, y) for x, y in series[key])
            lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{pts}"/>')
            lines.append(f'<text x="{width - m - 70}" y="{20 if key == "loss" else 36}" fill="{colour}" '
                         f'font-size="12">{key}</text>')
    axes = (
        f'<line x1="{m}" y1="{height - m}" x2="{width - m}" y2="{height - m}" stroke="#555"/>'
        f'<line x1="{m}" y1="{m}" x2="{m}" y2="{height - m}" stroke="#555"/>'
        f'<text x="{m}" y="{height - 10}" font-size="11">step 0</text>'
        f'<text x="{width - m - 40}" y="{height - 10}" font-size="11">step {x_max:g}</text>'
        f'<text x="2" y="{m}" font-size="11">{y_max:.3g}</text>'
        f'<text x="2" y="{height - m}" font-size="11">{y_min:.3g}</text>'
    )
    return f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">{axes}{"".join(lines)}</svg>'


def _png_data_uri(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def write_html_report(
    out: str | Path,
    title: str,
    summary: Mapping[str, Any],
    tasks: Sequence[Task] = (),
    submission: Mapping[str, Any] | None = None,
    loss_log: Sequence[Mapping[str, Any]] = (),
    max_pictures: int = 60,
    extra_html: str = "",
    stop_at: float | None = None,
    more_tasks: int = 0,
) -> Path:
    """One self-contained HTML page: the summary table, the loss curve and a picture per task (the first
    ``max_pictures``, fewer when ``stop_at`` (a ``time.time()``) passes while drawing; ``more_tasks`` left out
    already are counted in the note on what was not drawn)."""
    from arc_kit.core.files import atomic_write_text

    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
                   for k, v in summary.items())
    pictures = []
    for task in list(tasks)[:max_pictures]:
        if stop_at is not None and time.time() >= stop_at:
            break
        attempts = submission.get(task.task_id) if submission else None
        uri = _png_data_uri(draw_task(task, attempts))
        pictures.append(f'<figure><img src="{uri}" alt="task {html.escape(task.task_id)}"></figure>')
    left_out = len(tasks) - len(pictures) + more_tasks
    more = f"<p>{left_out} more tasks not drawn.</p>" if left_out else ""
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:24px}}table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:4px 8px;text-align:left}}figure{{display:inline-block;margin:8px}}</style>
</head><body><h1>{html.escape(title)}</h1><h2>Summary</h2><table>{rows}</table>
<h2>Loss</h2>{loss_curve_svg(loss_log)}{extra_html}<h2>Tasks</h2>{''.join(pictures)}{more}</body></html>"""
    out = Path(out)
    atomic_write_text(out, page)
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def write_run_report(out: str | Path, raw_tasks: Mapping[str, Any], solutions: Mapping[str, Any], where: str,
                     submission_path: Path, report: Any, max_pictures: int = 60,
                     stop_at: float | None = None) -> Path:
    """The dry run's ``report.html``: its summary and a picture per attempted task (answers beside the truth),
    the wrong ones first, drawn until ``stop_at``.

    ``raw_tasks`` and ``solutions`` are the run's inputs as read (``where`` names their file); only the tasks
    drawn are parsed again. The answers come from the file on disk, so the page shows what Kaggle would score;
    tasks that failed to load are listed in the summary, not drawn.
    """
    from arc_kit.core.tasks import TaskFileError, parse_task, read_json

    def wrong_first(task_id: str) -> int:
        correct = report.per_task[task_id].correct
        return 1 if correct is None else 2 if all(correct) else 0

    # stable: within each kind, the order the answers landed
    order = sorted((tid for tid in report.attempted_ids if tid in raw_tasks), key=wrong_first)
    attempted = []
    for tid in order[:max_pictures]:
        try:
            attempted.append(parse_task(tid, raw_tasks[tid], where, solutions.get(tid)))
        except TaskFileError:  # a solution that does not fit the task: drawn without it
            attempted.append(parse_task(tid, raw_tasks[tid], where))
    summary: dict[str, Any] = {
        "answered entries": f"{report.answered}/{report.entries}",
        "tasks attempted": f"{report.tasks_attempted} of {report.tasks_queued} queued ({report.tasks} in the file)",
        "seconds": round(report.seconds, 1),
        "overrun seconds": report.overrun_seconds,
        "deadline hit": report.deadline_hit,
        "workers": report.workers,
        "tokens/s": round(report.tokens_per_second, 1),
    }
    for n, line in enumerate(time_lines(report)):
        summary["where the time went" + (f" ({n + 1})" if n else "")] = line
    if report.score is not None:
        summary["score (ARC Prize, per task)"] = report.score
    if report.model_error:
        summary["MODEL ERROR"] = report.model_error
    for n, warning in enumerate(report.warnings):
        summary[f"WARNING {n + 1}"] = warning
    for tid, why in list(report.errors.items())[:20]:
        summary[f"error in {tid}"] = why
    return write_html_report(out, "arc-kit dry run", summary, attempted, read_json(submission_path),
                             max_pictures=max_pictures, extra_html=candidates_table(report), stop_at=stop_at,
                             more_tasks=len(order) - len(attempted))


def candidates_table(report: Any, max_rows: int = 200) -> str:
    """Per test input: candidates found, where the right answer ranked before and after re-scoring (with
    solutions), the best candidates with their scores, and the seconds spent decoding and scoring."""
    rows = []
    for tid, record in report.per_task.items():
        for index, r in enumerate(record.inputs):
            top = "<br>".join(f"{'/'.join(''.join(map(str, row)) for row in c['grid'])} ({c['score']}, x{c['count']})"
                              for c in r.top)
            rows.append(f"<tr><td>{html.escape(tid)}[{index}]</td><td>{r.candidates}</td>"
                        f"<td>{_fmt(r.right_among)}</td><td>{_fmt(r.rank_before)}</td><td>{_fmt(r.rank_after)}</td>"
                        f"<td>{r.decode_seconds:.2f} / {r.score_seconds:.2f}</td><td><code>{top}</code></td></tr>")
    if not rows:
        return ""
    head = ("<tr><th>test input</th><th>candidates</th><th>right among</th><th>rank before</th>"
            "<th>rank after</th><th>decode / score s</th><th>top candidates (score, views)</th></tr>")
    return f"<h2>Candidates</h2><table>{head}{''.join(rows[:max_rows])}</table>"
