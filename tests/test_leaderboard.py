"""Leaderboards: mean ± std over seeds, direction arrows, bold only where a test backs it, ΔMTL against the chosen
baseline with the interval of the paired differences, marks for diverged runs and constant-level cells."""
import csv
import json
import re

import pytest

from mtlbench.cli import main
from mtlbench.leaderboard.stats import iman_davenport_p, t_interval
from mtlbench.metrics import delta_mtl
from mtlbench.runner.store import write_json_atomic
from conftest import REPO

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
    assert ("| method | seg miou ↑† | depth abs_err ↓† | ΔMTL % vs supervised ↑ [95% CI of the paired difference] | "
            "p vs supervised (Holm) | seeds | params |") in text
    assert "| stl | 0.3200 ± 0.0283 |" in text  # mean and sample std of 0.30 and 0.34
    assert "A smoke run, not a finding: with 2 seeds no paired comparison here can be significant" in text
    assert "**" not in text  # 2 seeds back no claim: nothing is bold (2/2^2 = 0.5)
    assert "ΔMTL against supervised over seg miou, depth abs_err (columns marked †)" in text
    baseline = {"seg": {"miou": 0.22}, "depth": {"abs_err": 0.62}}
    chosen = {"seg": ["miou"], "depth": ["abs_err"]}
    stl = [delta_mtl({"seg": {"miou": m}, "depth": {"abs_err": a}}, baseline, DIRECTIONS, chosen)
           for m, a in ((0.30, 0.50), (0.34, 0.54))]
    supervised = [delta_mtl({"seg": {"miou": m}, "depth": {"abs_err": a}}, baseline, DIRECTIONS, chosen)
                  for m, a in ((0.20, 0.60), (0.24, 0.64))]
    rows = {row["method"]: row for row in csv.DictReader(out.with_suffix(".csv").open())}
    assert float(rows["stl"]["delta_mean"]) == pytest.approx(sum(stl) / 2, rel=1e-5)
    assert float(rows["supervised"]["delta_mean"]) == pytest.approx(0.0, abs=1e-9)
    # the interval is that of the paired differences stl - supervised, seed by seed: what the p-value tests
    low, high = t_interval([a - b for a, b in zip(stl, supervised)])
    assert (float(rows["stl"]["delta_ci_low"]), float(rows["stl"]["delta_ci_high"])) == pytest.approx((low, high),
                                                                                                       rel=1e-4)
    assert rows["supervised"]["delta_ci_low"] == rows["supervised"]["p_vs_baseline"] == ""  # nothing vs itself
    assert re.search(r"^\| supervised \| [^|]+ \| [^|]+ \| \+0\.00 ± [0-9.]+ \|  \|", text, re.MULTILINE)
    assert rows["mtpsl"]["seeds"] == "1"
    assert "Suite `suites/demo.yaml`" in text and "hardware: test CPU" in text


def test_the_footer_names_the_commits_the_results_ran_at_not_the_current_folders(store, tmp_path, monkeypatch):
    import subprocess

    from mtlbench.provenance import source_commit

    for job, commit in (("stl0", "abc1234"), ("stl1", "abc1234"), ("supervised0", "def5678-dirty")):
        path = store / "demo" / job / "result.json"
        write_json_atomic(path, {**json.loads(path.read_text()), "commit": commit})
    other = tmp_path / "another-repository"  # rendered from inside some other git checkout
    other.mkdir()
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    monkeypatch.chdir(other)
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(tmp_path / "demo")]) == 0
    footer = (tmp_path / "demo.md").read_text().strip().splitlines()[-1]
    assert "· commits abc1234, def5678-dirty, unrecorded ·" in footer  # two jobs predate the commit field
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert source_commit().removesuffix("-dirty") == head  # mtlbench's own checkout, not the current folder's


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
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 2  # the table and the summary
    assert tex.count(r"\begin{table}") == tex.count(r"\end{table}") == 2
    assert all(rule in tex for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0]
    assert [line.split("&")[0].strip() for line in body.strip().splitlines()] == ["mtpsl", "stl", "supervised"]
    assert r"\pm" in tex and r"$\Delta$MTL" in tex
    # the file meant for papers keeps the labels and the notes: the interval in the header, the rest in the caption
    assert r"[95\% CI of the paired difference]" in tex and r"$\uparrow$\dag{}" in tex
    caption = tex.split(r"\caption{")[1].split("}\n")[0]
    assert r"Student t interval over 2 seeds" in caption and "Holm-adjusted over 2 comparisons" in caption
    assert "A smoke run, not a finding" in caption and "7 seeds would be needed" in caption

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
    assert page.tags.count("table") == 2 and len(page.images) == 2  # the table, the summary; ΔMTL and task bars
    for src in page.images:  # every image inline: the page needs no network and no other file
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for figure in ("delta", "tasks"):
        assert out.with_name(f"demo-{figure}.png").read_bytes()[:4] == b"\x89PNG"
        assert out.with_name(f"demo-{figure}.pdf").read_bytes()[:4] == b"%PDF"


def test_formats_can_be_chosen(store, tmp_path, capsys):
    out = tmp_path / "only" / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out), "--format", "md,csv,tex"]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["demo-summary.csv", "demo.csv", "demo.md", "demo.tex"]
    assert main(["leaderboard", "demo", "--results", str(store), "--format", "docx"]) == 2
    assert "--format docx" in capsys.readouterr().err


# ------------------------------------------------------------------ across tables, published numbers, epochs
def write_suite(root, runs, **leaderboard):
    for r in runs:
        (root / "demo" / r["job_id"]).mkdir(parents=True, exist_ok=True)
        write_json_atomic(root / "demo" / r["job_id"] / "result.json", r)
    write_json_atomic(root / "demo" / "suite.json", {"name": "demo", "path": "suites/demo.yaml",
                                                     "leaderboard": {"baseline": "supervised", "metrics": {},
                                                                     **leaderboard}})
    return root


def in_scenario(r, scenario):
    return {**r, "scenario": scenario, "job_id": f"{r['job_id']}-{scenario}"}


def two_tables(tmp_path, **leaderboard):
    """onelabel ranks stl > mtpsl > supervised by ΔMTL, randomlabels mtpsl > stl > supervised."""
    runs = []
    for seed in range(3):
        runs += [in_scenario(result("stl", seed, 0.30 + 0.01 * seed, 0.50), "onelabel"),
                 in_scenario(result("mtpsl", seed, 0.26 + 0.01 * seed, 0.55), "onelabel"),
                 in_scenario(result("supervised", seed, 0.20 + 0.01 * seed, 0.60), "onelabel"),
                 in_scenario(result("stl", seed, 0.25 + 0.01 * seed, 0.55), "randomlabels"),
                 in_scenario(result("mtpsl", seed, 0.35 + 0.01 * seed, 0.45), "randomlabels"),
                 in_scenario(result("supervised", seed, 0.20 + 0.01 * seed, 0.60), "randomlabels")]
    return write_suite(tmp_path / "results", runs, **leaderboard)


def test_the_summary_across_tables_ranks_methods_but_scenarios_of_one_dataset_draw_no_diagram(tmp_path):
    store = two_tables(tmp_path)
    out = tmp_path / "board" / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out)]) == 0
    text = out.with_suffix(".md").read_text()
    assert "## Across tables" in text
    assert "| stl | 1.50 | 2/2 |" in text and "| mtpsl | 1.50 | 2/2 |" in text and "| supervised | 3.00 | 2/2 |" in text
    summary = {r["method"]: r for r in csv.DictReader(out.with_name("demo-summary.csv").open())}
    assert summary["supervised"]["poi"] == ""  # the baseline against itself means nothing: left out
    assert re.search(r"^\| supervised \| 3\.00 \| 2/2 \| [^|]+ \| — \|$", text, re.MULTILINE)
    assert float(summary["mtpsl"]["poi"]) == 1.0  # every run above every baseline run, in both tables
    assert "the 2 tables here come from 1 dataset" in text and "not below the largest possible gap of 2" in text
    assert not out.with_name("demo-cd.png").exists()


def test_the_critical_difference_diagram_needs_independent_datasets_and_uses_iman_davenport(tmp_path):
    """Three datasets, one table each: three independent blocks, where the Nemenyi critical difference (1.91
    ranks for 3 methods) falls below the largest possible gap (2)."""
    runs = []
    for dataset, shift in (("a", 0.0), ("b", 0.02), ("c", 0.05)):
        for seed in range(2):
            for method, miou, abs_err in (("stl", 0.30, 0.50), ("mtpsl", 0.26, 0.55), ("supervised", 0.20, 0.60)):
                r = result(method, seed, miou + shift + 0.01 * seed, abs_err)
                runs.append({**r, "dataset": dataset, "job_id": f"{dataset}-{method}{seed}"})
    store = write_suite(tmp_path / "results", runs)
    out = tmp_path / "board" / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    blocks = [[float(next(r["delta_mean"] for r in rows if r["dataset"] == d and r["method"] == m))
               for m in ("stl", "mtpsl", "supervised")] for d in "abc"]
    summary = {r["method"]: r for r in csv.DictReader(out.with_name("demo-summary.csv").open())}
    assert float(summary["stl"]["iman_davenport_p"]) == pytest.approx(iman_davenport_p(__import__("numpy").array(blocks)))
    assert out.with_name("demo-cd.png").exists()
    assert "Iman-Davenport test over 3 datasets" in out.with_suffix(".md").read_text()


def test_one_table_has_a_summary_but_no_critical_difference_diagram(store, tmp_path):
    out = tmp_path / "board" / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out)]) == 0
    assert "No critical-difference diagram: the Friedman and Nemenyi tests" in out.with_suffix(".md").read_text()
    assert not out.with_name("demo-cd.png").exists()


def test_published_numbers_stand_beside_ours_with_the_difference(tmp_path):
    published = [{"source": "Nishi et al. 2024", "table": "Table 1", "scenario": "onelabel",
                  "baseline": "supervised", "metrics": {"seg": ["miou"], "depth": ["abs_err"]},
                  "notes": {"mtpsl": "the paper's schedule: 200 epochs"},
                  "rows": {"mtpsl": {"seg/miou": 0.30, "delta_mtl": 11.04}}}]
    store = two_tables(tmp_path, published=published)
    out = tmp_path / "board" / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out)]) == 0
    text = out.with_suffix(".md").read_text()
    assert text.count("Beside Nishi et al. 2024, Table 1") == 1  # onelabel only
    assert "| mtpsl | seg/miou | 0.2700 ± 0.0100 | 0.3000 | -0.0300 | the paper's schedule: 200 epochs |" in text
    rows = {r["value"]: r for r in csv.DictReader(out.with_name("demo-published.csv").open())}
    assert float(rows["delta_mtl"]["paper"]) == 11.04
    assert float(rows["delta_mtl"]["difference"]) == pytest.approx(float(rows["delta_mtl"]["ours"]) - 11.04, abs=1e-4)
    assert r"beside Nishi et al. 2024, Table 1" in out.with_suffix(".tex").read_text()


@pytest.mark.parametrize("entry, shown", [
    ({"baseline": "stl", "metrics": {"seg": ["miou"], "depth": ["abs_err"]}},
     "| — | not comparable: the paper's ΔMTL is against stl over seg miou, depth abs_err, ours is against supervised "
     "over seg miou, depth abs_err |"),
    ({"baseline": "supervised", "metrics": {"seg": ["miou"], "depth": ["rmse"]}},
     "| — | not comparable: the paper's ΔMTL is against supervised over seg miou, depth rmse"),
    ({}, "| comparability unchecked: the entry states no baseline and metrics of the paper's ΔMTL"),
])
def test_a_published_delta_with_another_baseline_or_metric_set_is_flagged_not_subtracted(tmp_path, entry, shown):
    published = [{"source": "P", "table": "T1", "scenario": "onelabel", "rows": {"mtpsl": {"delta_mtl": 11.04}},
                  **entry}]
    store = two_tables(tmp_path, published=published)
    out = tmp_path / "board" / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out)]) == 0
    assert shown in out.with_suffix(".md").read_text()
    row = next(csv.DictReader(out.with_name("demo-published.csv").open()))
    assert (row["difference"] == "") == (row["comparable"] == "False")


def test_a_published_row_the_results_cannot_show_names_the_field_to_fix(tmp_path, capsys):
    published = [{"source": "x", "table": "T1", "rows": {"nope": {"seg/miou": 0.3}}}]
    store = two_tables(tmp_path, published=published)
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(tmp_path / "b")]) == 2
    assert "leaderboard.published[0].rows.nope" in capsys.readouterr().err
    published = [{"source": "x", "table": "T1", "rows": {"mtpsl": {"seg/pixel_acc": 0.3}}}]
    store = two_tables(tmp_path / "again", published=published)
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(tmp_path / "b")]) == 2
    assert "leaderboard.published[0].rows.mtpsl.seg/pixel_acc: not a value of this table" in capsys.readouterr().err


def epochs(r, records):
    """A result with a history: (val, test) of (miou, abs_err) per epoch, in one stage or per task (STL)."""
    def metrics(miou, abs_err):
        return {"seg": {"miou": miou, "pixel_acc": 0.5}, "depth": {"abs_err": abs_err, "delta1": 0.5}}

    history = [{"stage": "mtl", "epoch": i + 1, "val": metrics(*val), "test": metrics(*test)}
               for i, (val, test) in enumerate(records)]
    return {**r, "history": history, "val": history[-1]["val"], "test": history[-1]["test"]}


def stl_epochs(r, seg, depth):
    """STL: one stage per task, (val, test) per epoch of that task's metric."""
    history = [{"stage": task, "epoch": i + 1, "val": {task: {metric: val, **other}}, "test": {task: {metric: test,
                                                                                                        **other}}}
               for task, metric, other, records in (("seg", "miou", {"pixel_acc": 0.5}, seg),
                                                    ("depth", "abs_err", {"delta1": 0.5}, depth))
               for i, (val, test) in enumerate(records)]
    last = {"seg": history[len(seg) - 1]["test"]["seg"], "depth": history[-1]["test"]["depth"]}
    return {**r, "history": history, "test": last,
            "val": {"seg": history[len(seg) - 1]["val"]["seg"], "depth": history[-1]["val"]["depth"]}}


def test_best_val_reports_the_test_metrics_of_the_epoch_chosen_on_validation_never_on_test(tmp_path, capsys):
    runs = []
    for seed in range(2):
        runs.append(epochs(result("supervised", seed, 0, 0), [((0.20, 0.60), (0.2, 0.6)), ((0.20, 0.60), (0.2, 0.6))]))
        # epoch 1 is best on validation, epoch 2 on test: best_val must report epoch 1's test
        runs.append(epochs(result("mtpsl", seed, 0, 0), [((0.40, 0.40), (0.25, 0.55)), ((0.21, 0.59), (0.50, 0.30))]))
        # STL: seg is best on validation at epoch 1, depth at epoch 2
        runs.append(stl_epochs(result("stl", seed, 0, 0), seg=[(0.30, 0.31), (0.10, 0.11)],
                               depth=[(0.70, 0.71), (0.50, 0.51)]))
    store = write_suite(tmp_path / "results", runs, select="best_val")
    out = tmp_path / "board" / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out)]) == 0
    text = out.with_suffix(".md").read_text()
    rows = {r["method"]: r for r in csv.DictReader(out.with_suffix(".csv").open())}
    assert float(rows["mtpsl"]["seg/miou/mean"]) == pytest.approx(0.25)
    assert float(rows["mtpsl"]["depth/abs_err/mean"]) == pytest.approx(0.55)
    assert float(rows["stl"]["seg/miou/mean"]) == pytest.approx(0.31)
    assert float(rows["stl"]["depth/abs_err/mean"]) == pytest.approx(0.51)
    assert "best validation ΔMTL" in text and "epoch: best_val by delta_mtl" in text
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out), "--select", "last"]) == 0
    rows = {r["method"]: r for r in csv.DictReader(out.with_suffix(".csv").open())}
    assert float(rows["mtpsl"]["seg/miou/mean"]) == pytest.approx(0.50)
    assert "Test-split metrics of the last epoch" in out.with_suffix(".md").read_text()
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out)]) == 0
    rows = {r["method"]: r for r in csv.DictReader(out.with_suffix(".csv").open())}
    assert float(rows["mtpsl"]["seg/miou/mean"]) == pytest.approx(0.25)  # --select last did not stick


def test_best_val_by_one_metric_and_without_per_epoch_tests(tmp_path, capsys):
    runs = [epochs(result("supervised", 0, 0, 0), [((0.20, 0.60), (0.2, 0.6)), ((0.30, 0.70), (0.3, 0.7))])]
    store = write_suite(tmp_path / "results", runs, select="best_val", select_by="depth/abs_err")
    out = tmp_path / "board" / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out)]) == 0
    rows = {r["method"]: r for r in csv.DictReader(out.with_suffix(".csv").open())}
    assert float(rows["supervised"]["depth/abs_err/mean"]) == pytest.approx(0.6)  # lower val abs err: epoch 1
    untested = tmp_path / "untested"
    write_suite(untested, [result("supervised", 0, 0.2, 0.6)])
    assert main(["leaderboard", "demo", "--results", str(untested), "--select", "best_val"]) == 2
    assert "set train.test_every_epoch: true" in capsys.readouterr().err


# ------------------------------------------------------------------ what the statistics back, and what they refuse
def test_with_enough_seeds_the_best_is_bold_only_where_the_paired_test_backs_it(tmp_path):
    """8 seeds: stl beats both on seg mIoU every seed (bold), while on depth mtpsl and stl alternate (no bold)."""
    runs = []
    for seed in range(8):
        runs += [result("stl", seed, 0.40 + 0.01 * seed, 0.50 + (0.02 if seed % 2 else -0.02)),
                 result("mtpsl", seed, 0.30 + 0.01 * seed, 0.50 + (-0.02 if seed % 2 else 0.02)),
                 result("supervised", seed, 0.20 + 0.01 * seed, 0.60)]
    store = write_suite(tmp_path / "results", runs)
    out = tmp_path / "board" / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out)]) == 0
    text = out.with_suffix(".md").read_text()
    assert "| stl | **0.4350 ± 0.0245** | 0.5000 ± 0.0214 |" in text
    assert "| mtpsl | 0.3350 ± 0.0245 | 0.5000 ± 0.0214 |" in text
    assert "A smoke run" not in text


def test_a_baseline_metric_of_zero_is_refused_naming_the_metric_and_jobs(tmp_path, capsys):
    runs = [result("supervised", seed, 0.2, 0.6, delta1=0.0) for seed in range(2)]
    runs += [result("stl", seed, 0.3, 0.5, delta1=0.1) for seed in range(2)]
    store = write_suite(tmp_path / "results", runs, metrics={"depth": ["delta1"]})
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "ΔMTL is undefined: the baseline's depth delta1 is 0.0" in err
    assert "supervised0, supervised1" in err and "leaderboard.metrics" in err


def test_diverged_runs_and_cells_no_better_than_a_constant_are_marked_and_never_bold(tmp_path):
    """8 seeds, where stl would be bold in both columns: one diverged seed takes the whole row out of bold, and
    a depth no better than the constant prediction takes that cell out."""
    constant = {"seg": {"miou": 0.10, "pixel_acc": 0.4}, "depth": {"abs_err": 0.52, "delta1": 0.3}}
    runs = []
    for seed in range(8):
        runs += [{**result("stl", seed, 0.40 + 0.01 * seed, 0.40), "constant": constant,
                  "diverged": ["depth"] if seed == 3 else []},
                 {**result("mtpsl", seed, 0.30 + 0.01 * seed, 0.55 - 0.001 * seed), "constant": constant,
                  "diverged": []},
                 {**result("supervised", seed, 0.20 + 0.01 * seed, 0.60 + 0.001 * seed), "constant": constant}]
    store = write_suite(tmp_path / "results", runs)
    out = tmp_path / "board" / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out)]) == 0
    text = out.with_suffix(".md").read_text()
    assert "| stl (diverged: seed 3) | 0.4350 ± 0.0245 | 0.4000 ± 0.0000 |" in text  # best in both, but diverged
    assert "| mtpsl | **0.3350 ± 0.0245** | 0.5465 ± 0.0024 ‡ |" in text  # bold among the rest; depth ‡ (> 0.52)
    assert "| supervised | 0.2350 ± 0.0245 | 0.6035 ± 0.0024 ‡ |" in text
    assert "| (constant) | 0.1000 | 0.5200 |" in text
    assert "diverged: the run's last-epoch training loss" in text and "‡: some seed scores no better" in text
    rows = {r["method"]: r for r in csv.DictReader(out.with_suffix(".csv").open())}
    assert rows["stl"]["diverged_seeds"] == "1" and rows["mtpsl"]["depth/abs_err/below_constant_seeds"] == "8"
    assert float(rows["(constant)"]["depth/abs_err/mean"]) == 0.52


def test_acc_mtl_column_is_eq_8_per_seed_and_stands_beside_the_papers(tmp_path):
    published = [{"source": "Yun and Cho 2023", "table": "Table 1", "scenario": "onelabel",
                  "metrics": {"seg": ["miou"], "depth": ["abs_err"]}, "rows": {"mtpsl": {"acc_mtl": 0.7}}}]
    store = two_tables(tmp_path, acc_mtl=True, published=published)
    out = tmp_path / "board" / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out)]) == 0
    rows = {(r["scenario"], r["method"]): r for r in csv.DictReader(out.with_suffix(".csv").open())}
    seeds = [(0.26 + 0.01 * s) ** 0.5 * 0.55 ** -0.5 for s in range(3)]  # sqrt(mIoU / abs err), Eq. 8 for two tasks
    mean = sum(seeds) / 3
    assert float(rows["onelabel", "mtpsl"]["acc_mean"]) == pytest.approx(mean, abs=1e-5)
    text = out.with_suffix(".md").read_text()
    assert "Acc_MTL ↑" in text and f"{mean:.4f} ± " in text
    published_rows = next(csv.DictReader(out.with_name("demo-published.csv").open()))
    assert float(published_rows["difference"]) == pytest.approx(mean - 0.7, abs=1e-4)
    assert r"Acc\_MTL" in out.with_suffix(".tex").read_text()


def test_acc_mtl_of_a_seed_with_a_zero_metric_is_shown_undefined_not_averaged(tmp_path):
    runs = [result("supervised", s, 0.2, 0.6) for s in range(2)] + [result("mtpsl", 0, 0.0, 0.5),
                                                                     result("mtpsl", 1, 0.3, 0.5)]
    store = write_suite(tmp_path / "results", runs, acc_mtl=True)
    out = tmp_path / "board" / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out)]) == 0
    assert re.search(r"^\| mtpsl \|.*\| — \(undefined\) \|", out.with_suffix(".md").read_text(), re.MULTILINE)


def costed(r, epoch_seconds, peak_mib, gflops, device="test CPU"):
    return {**r, "device": device, "costs": {"epoch_seconds": epoch_seconds, "evaluation_seconds": 0.1,
                                             "samples_per_second": 100.0, "step_flops": int(gflops * 1e9),
                                             "parameters": 1000, "method_parameters": 0,
                                             "peak_memory_bytes": peak_mib * 2 ** 20, "memory_measured": "test"}}


def cost_cells(text):
    first = text.split("## ", 2)[1]  # the first table, not the summary after it
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in first.splitlines() if line.startswith("| ")}
    header = rows["method"]
    at = {name: header.index(name) for name in ("time ×", "memory ×", "GFLOPs/step")}
    return {method: {name: cells[i].strip(" |") for name, i in at.items()} for method, cells in rows.items()
            if method != "method"}


def test_costs_are_ratios_to_the_baseline_on_one_device_and_an_unmeasured_cell_says_why(tmp_path, capsys):
    runs = [costed(result("supervised", 0, 0.20, 0.60), 2.0, 100, 0.25),
            costed(result("supervised", 1, 0.24, 0.64), 4.0, 300, 0.25),
            costed(result("pcgrad", 0, 0.22, 0.61), 9.0, 300, 0.7), costed(result("pcgrad", 1, 0.23, 0.6), 9.0, 500, 0.7),
            costed(result("gpu", 0, 0.2, 0.6), 0.1, 50, 0.3, device="H200"), costed(result("gpu", 1, 0.2, 0.6), 0.1, 50, 0.3,
                                                                                     device="H200"),
            result("old", 0, 0.2, 0.6), costed(result("old", 1, 0.2, 0.6), 1.0, 100, 0.25)]
    root = write_suite(tmp_path / "results", runs)
    out = tmp_path / "board" / "demo"
    assert main(["leaderboard", "demo", "--results", str(root), "--out", str(out)]) == 0
    text = out.with_suffix(".md").read_text()
    cells = cost_cells(text)
    assert cells["supervised"] == {"time ×": "1.00×", "memory ×": "1.00×", "GFLOPs/step": "0.25"}
    assert cells["pcgrad"] == {"time ×": "3.00×", "memory ×": "2.00×", "GFLOPs/step": "0.7"}  # 9 s / 3 s, 400 / 200
    assert cells["gpu"] == {"time ×": "—", "memory ×": "—", "GFLOPs/step": "0.3"}  # FLOPs need no common device
    assert cells["old"] == {"time ×": "—", "memory ×": "—", "GFLOPs/step": "—"}  # never the mean of one seed
    assert "3 s per epoch and 200 MiB, all measured on test CPU" in text
    assert "gpu: measured on H200, the baseline on test CPU" in text
    assert "old: 1 seed(s) ran before mtlbench measured costs; rerun them with --force" in text
    rows = {row["method"]: row for row in csv.DictReader(out.with_suffix(".csv").open())}
    assert float(rows["pcgrad"]["time_ratio"]) == 3.0 and rows["gpu"]["time_ratio"] == ""
    assert (out.parent / "demo-pareto.png").exists()

    assert main(["leaderboard", "demo", "--results", str(root), "--out", str(out), "--columns", "delta,time"]) == 0
    header = next(line for line in out.with_suffix(".md").read_text().splitlines() if line.startswith("| method"))
    assert header == ("| method | ΔMTL % vs supervised ↑ [95% CI of the paired difference] | p vs supervised (Holm) | "
                      "time × |")
    assert main(["leaderboard", "demo", "--results", str(root), "--columns", "delta,speed"]) == 2
    assert "--columns speed: choose from metrics,delta,acc,time,memory,flops,seeds,params" in capsys.readouterr().err


def test_results_from_before_costs_render_without_cost_columns_and_say_why(store, tmp_path):
    out = tmp_path / "board" / "demo"
    assert main(["leaderboard", "demo", "--results", str(store), "--out", str(out)]) == 0
    text = out.with_suffix(".md").read_text()
    assert "time ×" not in text and "No cost columns: none of these results measured what its job cost" in text
    assert not (out.parent / "demo-pareto.png").exists()


def test_the_pareto_front_joins_the_methods_nothing_beats_on_cost_and_delta():
    from mtlbench.leaderboard.figures import pareto_front

    points = [(1.0, 0.0), (2.0, 5.0), (3.0, 4.0), (0.5, -1.0), (4.0, 6.0), (2.0, 1.0)]
    assert pareto_front(points) == [3, 0, 1, 4]  # (3, 4) is beaten by (2, 5); (2, 1) by (2, 5)
