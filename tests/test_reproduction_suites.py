"""The paper-reproduction suites are set as the authors' released scripts (Nishi et al. 2024 Tables 1-2)."""
import pytest

from mtlbench.config import load_suite
from conftest import REPO

PAPER_004 = ("supervised", "consistency", "mtpsl", "jtr")


@pytest.mark.parametrize("suite, batch, flip, mtpsl_weight", [("nyu_partial", 4, False, 2.0),
                                                              ("cityscapes_partial", 16, True, 1.0)])
def test_the_reproduction_suites_train_as_the_released_scripts(suite, batch, flip, mtpsl_weight,
                                                               without_dataset_files, monkeypatch):  # noqa: F811
    monkeypatch.chdir(REPO)
    jobs = load_suite(REPO / "suites" / f"{suite}.yaml").jobs
    for job in jobs:
        train = job.config["train"]
        assert train["precision"] == "fp32" and train["batch_size"] == batch and train["epochs"] == 300
        assert train["optimizer"] == {"name": "adam", "head_lr": None, "lr": 1e-4, "weight_decay": 0.0}
        assert train["scheduler"] == {"name": "step", "step_size": 200, "gamma": 0.5}
        assert train["augment"] == {"scale_crop": True, "flip": flip, "align_corners": True, "photometric_ops": 2,
                                    "photometric_magnitude": 6}
        method = job.config["method"]
        if job.method in PAPER_004:  # the scripts sum each image's labelled task losses
            assert method["supervision"] == {"name": "full", "per_image": "sum"}
        if job.method == "mtpsl":
            assert method["regularizer"]["weight"] == mtpsl_weight
    assert {job.method for job in jobs} >= {"stl", *PAPER_004}


def test_the_amtl_suite_trains_as_the_authors_script(without_dataset_files, monkeypatch):
    """Yun and Cho 2023 Table 1 as cfg/seg+depth+normal/NYU_MT/DeepLabV3_ResNet50.cfg sets it."""
    monkeypatch.chdir(REPO)
    suite = load_suite(REPO / "suites" / "nyu_amtl.yaml")
    assert len({job.seed for job in suite.jobs}) == 10
    rates = [8e-4, 4e-4, 2e-4, 1e-4, 8e-5]  # Sec. 4.1
    assert sorted({job.config["train"]["optimizer"]["lr"] for job in suite.jobs}) == sorted(rates)
    assert suite.raw.lr_grid.trim == 1 and suite.raw.lr_grid.score == "acc_mtl"
    for job in suite.jobs:
        config = job.config
        assert config["dataset"]["name"] == "nyud_mt" and (config["dataset"]["height"], config["dataset"]["width"]) \
            == (480, 640)
        assert config["model"] == {"name": "deeplab_resnet50", "decoder": "v3", "weights": "data/resnet50-11ad3fa6.pth",
                                   "task_norm": False, "head": "shared_aspp", "input_norm": "imagenet",
                                   "backbone": "resnet50"}  # IMAGENET1K_V2, as their nn/backbones/resnet.py loads
        train = config["train"]
        assert (train["epochs"], train["batch_size"], train["precision"], train["label_smoothing"]) == (100, 8, "bf16",
                                                                                                      0.1)
        assert train["optimizer"] == {"name": "adam", "head_lr": None, "lr": train["optimizer"]["lr"], "weight_decay": 5e-6}
        assert train["scheduler"] == {"name": "poly", "power": 0.9}
    amtl = [job for job in suite.jobs if job.method == "amtl"]
    by_id = {job.id: job for job in suite.jobs}
    for job in amtl:  # potentials from this suite's STL jobs at the same learning rate
        stl = [by_id[i] for i in job.inputs["amtl-potentials"]]
        assert len(stl) == 10 and {s.config["train"]["optimizer"]["lr"] for s in stl} == {
            job.config["train"]["optimizer"]["lr"]}
    assert suite.raw.leaderboard.baseline == "stl"


@pytest.mark.parametrize("suite, model", [
    ("nyu_amtl_v3plus", {"head": "shared_aspp", "decoder": "v3+_amtl", "backbone": "resnet50"}),
    ("nyu_amtl_individual", {"head": "per_task", "decoder": "v3", "backbone": "resnet50"}),
    ("nyu_amtl_individual_v3plus", {"head": "per_task", "decoder": "v3+_amtl", "backbone": "resnet50"}),
    ("nyu_amtl_mobilenet", {"head": "shared_aspp", "decoder": "v3+_amtl", "backbone": "mobilenet_v2"}),
    ("nyu_amtl_efficientnet", {"head": "shared_aspp", "decoder": "v3+_amtl", "backbone": "efficientnet_v2_s"})])
def test_the_amtl_variant_suites_differ_from_table_1s_only_in_the_model(suite, model, without_dataset_files,
                                                                       monkeypatch):
    """Yun and Cho 2023 Tables 2-3: the same protocol and methods as nyu_amtl, the model of each column."""
    monkeypatch.chdir(REPO)
    base = load_suite(REPO / "suites" / "nyu_amtl.yaml")
    variant = load_suite(REPO / "suites" / f"{suite}.yaml")
    table_1 = set(base.raw.model_dump()["methods"][:13])  # the variants run Table 1's methods
    assert [(j.method, j.seed, j.config["train"]["optimizer"]["lr"]) for j in variant.jobs] == \
        [(j.method, j.seed, j.config["train"]["optimizer"]["lr"]) for j in base.jobs if j.method in table_1]
    config = variant.jobs[0].config
    assert {k: config["model"][k] for k in model} == model
    smoothing = 0.1 if model["backbone"] == "resnet50" else 0.0  # the MobileNetV2 and EfficientNet configs set none
    assert config["train"]["label_smoothing"] == smoothing


def test_nyu_amtls_published_acc_mtl_is_eq_9_of_its_own_rows():
    """Acc_MTL (Eq. 8-9) of each Table 1 row's six metrics is the Acc_MTL the table prints."""
    import yaml

    from mtlbench.data import DATASETS
    from mtlbench.metrics import acc_mtl
    from mtlbench.registry import build

    raw = yaml.safe_load((REPO / "suites" / "nyu_amtl.yaml").read_text())
    directions = {t: task.directions for t, task in build(DATASETS, raw["dataset"]).tasks().items()}
    (entry,) = raw["leaderboard"]["published"]
    metrics = entry["metrics"]
    for method, row in entry["rows"].items():
        if "seg/miou" not in row:  # Tables 4-6 print Acc_MTL and ΔMTL only
            continue
        values = {t: {m: row[f"{t}/{m}"] for m in ms} for t, ms in metrics.items()}
        assert acc_mtl(values, directions, metrics) == pytest.approx(row["acc_mtl"], abs=0.00015), method


@pytest.mark.parametrize("suite", ["nyu_partial", "cityscapes_partial", "nyu_balancing", "nyu_amtl", "voc_nyu_union",
                                   "nyu_sta", "cityscapes_sta", "nyu_jtr", "nyu_jtr_deeplab"])
def test_a_published_delta_is_what_its_stated_baseline_and_metrics_give_from_the_papers_own_rows(suite):
    """Eq. 7 over the metrics the entry states, against its stated baseline's row, recomputes each ΔMTL the paper
    printed (to its rounding): the stated comparison is the paper's, and the values are in mtlbench's units."""
    import yaml

    from mtlbench.data import DATASETS
    from mtlbench.metrics import delta_mtl
    from mtlbench.registry import build

    raw = yaml.safe_load((REPO / "suites" / f"{suite}.yaml").read_text())
    directions = {t: task.directions for t, task in build(DATASETS, raw["dataset"]).tasks().items()}
    for entry in raw["leaderboard"]["published"]:
        shown = {t: [m] for key in next(iter(entry["rows"].values())) if "/" in key for t, m in [key.split("/")]}
        metrics = shown if entry["metrics"] == "unstated" else entry["metrics"]
        baseline = entry["rows"][entry["baseline"]]

        def nested(row):
            return {t: {m: row[f"{t}/{m}"] for m in ms} for t, ms in metrics.items()}

        matches = [delta_mtl(nested(row), nested(baseline), directions, metrics) == pytest.approx(row["delta_mtl"],
                                                                                                  abs=0.06)
                   for row in entry["rows"].values()
                   if "delta_mtl" in row and all(f"{t}/{m}" in row for t, ms in metrics.items() for m in ms)]
        # an entry that calls its metrics unstated does so because the columns shown do not give its ΔMTL
        assert all(matches) if entry["metrics"] != "unstated" else not all(matches), suite


def test_the_voc_nyu_suite_trains_as_the_authors_script(without_dataset_files, monkeypatch):
    """Yun and Cho 2023 Table 7 as cfg/seg+det+depth/VMM_efficientnet_v2_s.cfg sets it: VOC 2007 + 2012
    (detection and segmentation) and NYU depth at 640 x 640, batch 32, AdamW 1e-4 with weight decay 5e-5, 200
    epochs, 2 warm-up epochs."""
    monkeypatch.chdir(REPO)
    suite = load_suite(REPO / "suites" / "voc_nyu_union.yaml")
    assert {job.method for job in suite.jobs} == {"stl", "supervised", "rlw", "dwa", "gls", "mgda", "pcgrad", "cagrad",
                                                  "gradnorm", "imtl_g", "dtp", "amtl"}
    for job in suite.jobs:
        dataset = job.config["dataset"]
        assert (dataset["name"], dataset["height"], dataset["width"]) == ("union", 640, 640)
        assert [(p["name"], p["tasks"]) for p in dataset["parts"]] == [
            ("pascal_voc_detection", ["detection", "seg"]), ("pascal_voc_detection", ["detection", "seg"]),
            ("nyu_depth", ["depth"])]
        assert all(p["segmentation"] for p in dataset["parts"][:2])
        assert job.config["model"]["name"] == "pyramid" and job.config["model"]["backbone"] == "efficientnet_v2_s"
        train = job.config["train"]
        assert (train["epochs"], train["batch_size"], train["precision"]) == (200, 32, "bf16")
        assert train["optimizer"] == {"name": "adamw", "head_lr": None, "lr": 1e-4, "weight_decay": 5e-5}
        assert train["scheduler"]["warmup_steps"] == 2 * -(-39446 // 32) and train["scheduler"]["milestones"] == []
    assert all(job.inputs["amtl-potentials"] for job in suite.jobs if job.method == "amtl")
