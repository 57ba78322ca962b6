"""Pictures use the ARC palette; `arc-kit show` marks attempts; the HTML report holds summary, curve, pictures."""

from __future__ import annotations

import json

from PIL import Image

from arc_kit.cli.main import main
from arc_kit.core.tasks import Pair, Task
from arc_kit.run.report import Panel, draw_panels, loss_curve_svg, write_html_report

EXPECTED = {
    0: (0, 0, 0), 1: (0, 116, 217), 2: (255, 65, 54), 3: (46, 204, 64), 4: (255, 220, 0),
    5: (170, 170, 170), 6: (240, 18, 190), 7: (255, 133, 27), 8: (127, 219, 255), 9: (135, 12, 37),
}


def test_palette_pixels_are_the_arc_colours():
    grid = (tuple(range(10)),)
    image = draw_panels([[Panel(grid, "")]])
    cell, pad, caption_h, frame = 24, 12, 16, 3  # 10 columns -> the largest cell size
    y = pad + caption_h + frame + cell // 2
    for colour in range(10):
        x = pad + frame + colour * cell + cell // 2
        assert image.getpixel((x, y)) == EXPECTED[colour], colour


def test_show_draws_a_task_with_attempts(tmp_path):
    task = {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[3, 4]]}]}
    (tmp_path / "c.json").write_text(json.dumps({"t1": task}))
    (tmp_path / "s.json").write_text(json.dumps({"t1": [[[4, 3]]]}))
    (tmp_path / "sub.json").write_text(json.dumps({"t1": [{"attempt_1": [[4, 3]], "attempt_2": [[0]]}]}))
    out = tmp_path / "t1.png"
    args = ["show", "t1", "--challenges", str(tmp_path / "c.json"), "--solutions", str(tmp_path / "s.json"),
            "--submission", str(tmp_path / "sub.json"), "--out", str(out)]
    assert main(args) == 0
    image = Image.open(out).convert("RGB")
    colours = set(image.getdata())
    assert (46, 160, 67) in colours and (207, 34, 46) in colours  # one attempt framed right, one wrong
    assert main(["show", "nope", "--challenges", str(tmp_path / "c.json"), "--out", str(out)]) == 1


def test_html_report_has_summary_curve_and_pictures(tmp_path):
    task = Task("t1", (Pair(((1,),), ((2,),)),), (Pair(((3,),), ((4,),)),))
    log = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0, "eval_loss": 1.5}]
    out = write_html_report(tmp_path / "r.html", "demo", {"score": 0.5}, [task],
                            {"t1": [{"attempt_1": [[4]], "attempt_2": [[0]]}]}, log)
    page = out.read_text()
    assert "<td>0.5000</td>" in page and "<polyline" in page and page.count("data:image/png;base64,") == 1
    assert "No training log" in loss_curve_svg([])
