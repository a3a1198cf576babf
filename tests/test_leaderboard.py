"""Leaderboards: mean ± std over seeds, direction arrows, best in bold, ΔMTL against the chosen baseline."""
import csv
import json
import re

import pytest

from mtlbench.cli import main
from mtlbench.metrics import delta_mtl
from mtlbench.runner.store import write_json_atomic

DIRECTIONS = {"seg": {"miou": True, "pixel_acc": True}, "depth": {"abs_err": False, "delta1": True}}
PRIMARY = {"seg": "miou", "depth": "abs_err"}


def result(method, seed, miou, abs_err, delta1=0.5):
    return {"schema": 1, "job_id": f"{method}{seed}", "suite": "demo", "dataset": "synthrooms",
            "scenario": "onelabel", "method": method, "seed": seed,
            "test": {"seg": {"miou": miou, "pixel_acc": 0.5}, "depth": {"abs_err": abs_err, "delta1": delta1}},
            "primary": PRIMARY, "directions": DIRECTIONS, "device": "test CPU"}


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "results"
    runs = [result("stl", 0, 0.30, 0.50), result("stl", 1, 0.34, 0.54),
            result("supervised", 0, 0.20, 0.60), result("supervised", 1, 0.24, 0.64),
            result("mtpsl", 0, 0.25, 0.40)]
    for r in runs:
        (root / "demo" / r["job_id"]).mkdir(parents=True)
        write_json_atomic(root / "demo" / r["job_id"] / "result.json", r)
    write_json_atomic(root / "demo" / "suite.json", {"name": "demo", "path": "suites/demo.yaml",
                                                     "leaderboard": {"baseline": "supervised", "metrics": {}}})
    return root


def test_markdown_and_csv_show_statistics_directions_and_delta(store, tmp_path):
    out = tmp_path / "board" / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out)]) == 0
    text = out.with_suffix(".md").read_text()
    assert ("| method | seg miou ↑ | depth abs_err ↓ | ΔMTL % vs supervised ↑ [95% CI] | p vs supervised (Holm) | "
            "seeds | params |") in text
    assert "| stl | **0.3200 ± 0.0283** |" in text  # mean and sample std of 0.30 and 0.34, best miou
    assert "With 2 seeds no paired comparison here can be significant" in text  # 2/2^2 = 0.5
    assert "**0.4000** |" in text  # mtpsl's single seed has the best (lowest) abs err, no ± for one seed
    baseline = {"seg": {"miou": 0.22}, "depth": {"abs_err": 0.62}}
    expected = [delta_mtl({"seg": {"miou": m}, "depth": {"abs_err": a}}, baseline, DIRECTIONS,
                          {"seg": ["miou"], "depth": ["abs_err"]}) for m, a in ((0.30, 0.50), (0.34, 0.54))]
    rows = {row["method"]: row for row in csv.DictReader(out.with_suffix(".csv").open())}
    assert float(rows["stl"]["delta_mean"]) == pytest.approx(sum(expected) / 2, rel=1e-5)
    assert float(rows["supervised"]["delta_mean"]) == pytest.approx(0.0, abs=1e-9)
    assert rows["mtpsl"]["seeds"] == "1"
    assert "Suite `suites/demo.yaml`" in text and "hardware: test CPU" in text


def test_baseline_and_metrics_can_be_chosen(store, tmp_path):
    suite = json.loads((store / "demo" / "suite.json").read_text())
    suite["leaderboard"]["metrics"] = {"depth": ["abs_err", "delta1"]}
    write_json_atomic(store / "demo" / "suite.json", suite)
    out = tmp_path / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out), "--baseline", "stl"]) == 0
    text = out.with_suffix(".md").read_text()
    assert "ΔMTL % vs stl" in text and "depth delta1 ↑" in text
    rows = {row["method"]: row for row in csv.DictReader(out.with_suffix(".csv").open())}
    assert float(rows["stl"]["delta_mean"]) == pytest.approx(0.0, abs=1e-9)
    assert float(rows["supervised"]["delta_mean"]) < 0


def test_tables_and_rows_follow_the_suites_order_then_the_alphabet(store, tmp_path):
    def order(out):
        rows = list(csv.DictReader(out.with_suffix(".csv").open()))
        return list(dict.fromkeys(row["scenario"] for row in rows)), [row["method"] for row in rows[:3]]

    full = {**result("supervised", 0, 0.2, 0.6), "job_id": "full", "scenario": "full"}
    (store / "demo" / "full").mkdir()
    write_json_atomic(store / "demo" / "full" / "result.json", full)
    out = tmp_path / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out)]) == 0
    assert order(out) == (["full", "onelabel"], ["supervised", "mtpsl", "stl"])  # an older run's suite.json
    suite = json.loads((store / "demo" / "suite.json").read_text())
    write_json_atomic(store / "demo" / "suite.json",
                      {**suite, "methods": ["supervised", "stl"], "scenarios": ["onelabel", "full"]})
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out)]) == 0
    assert order(out) == (["onelabel", "full"], ["supervised", "stl", "mtpsl"])


def test_results_of_jobs_the_suite_no_longer_has_are_left_out_with_a_warning(store, tmp_path, capsys):
    suite = json.loads((store / "demo" / "suite.json").read_text())
    write_json_atomic(store / "demo" / "suite.json", {**suite, "jobs": ["stl0", "stl1", "supervised0", "supervised1"]})
    out = tmp_path / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out)]) == 0
    assert re.search(r"^warning: demo: left out 1 result.*mtpsl0", capsys.readouterr().err, re.MULTILINE)
    assert [row["method"] for row in csv.DictReader(out.with_suffix(".csv").open())] == ["stl", "supervised"]


def test_no_results_is_a_clear_error(tmp_path, capsys):
    assert main(["leaderboard", "--results", str(tmp_path)]) == 1
    assert "no suite results" in capsys.readouterr().err


def test_latex_html_and_figures_are_written_and_well_formed(store, tmp_path):
    import base64
    from html.parser import HTMLParser

    out = tmp_path / "board" / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out)]) == 0
    tex = out.with_name("demo.tex").read_text()
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    assert all(rule in tex for rule in (r"\toprule", r"\midrule", r"\bottomrule")) and r"\textbf{" in tex
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0]
    assert [line.split("&")[0].strip() for line in body.strip().splitlines()] == ["mtpsl", "stl", "supervised"]
    assert r"\pm" in tex and r"$\Delta$MTL" in tex

    class Page(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.images = [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            if tag == "img":
                self.images.append(dict(attrs)["src"])

    page = Page()
    page.feed(out.with_name("demo.html").read_text())
    assert page.tags.count("table") == 1 and page.images
    for src in page.images:  # every image inline: the page needs no network and no other file
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.with_name("demo.png").read_bytes()[:4] == b"\x89PNG"
    assert out.with_name("demo.pdf").read_bytes()[:4] == b"%PDF"


def test_formats_can_be_chosen(store, tmp_path, capsys):
    out = tmp_path / "only" / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out), "--format", "md,csv,tex"]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["demo.csv", "demo.md", "demo.tex"]
    assert main(["leaderboard", "demo", "--results", str(store), "--format", "docx"]) == 2
    assert "--format docx" in capsys.readouterr().err
