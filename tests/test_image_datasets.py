"""Taskonomy and PASCAL VOC loaders on fixtures written in each dataset's on-disk format (PNG/JPEG files)."""
import copy

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY_JOB
from mtlbench.cli import main
from mtlbench.data import DATASETS, DatasetError
from mtlbench.methods import METHODS, Recipe
from mtlbench.models import SegNet
from mtlbench.train import run_job

S = 32  # fixture image side
BUILDINGS = {"train": ["allensville", "beechwood"], "val": ["collierville"], "test": ["darden"]}
UINT16_DOMAINS = {"depth_zbuffer": 12000, "edge_occlusion": 10128, "keypoints2d": 3129, "edge_texture": 11041}
RGB_DOMAINS = ("rgb", "normal", "reshading", "principal_curvature")


def save(array, path, palette=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if palette:
        image.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    image.save(path)


def write_taskonomy(root, per_building=2, seed=0):
    """Taskonomy's layout: root/<domain>/<building>/point_<p>_view_<v>_domain_<domain>.png and the split CSV."""
    rng = np.random.default_rng(seed)
    rows = ["id,train,val,test"] + [f"{b},{int(s == 'train')},{int(s == 'val')},{int(s == 'test')}"
                                    for s, bs in BUILDINGS.items() for b in bs]
    root.mkdir(parents=True, exist_ok=True)
    (root / "train_val_test_tiny.csv").write_text("\n".join(rows) + "\n")
    written = {}
    for building in [b for bs in BUILDINGS.values() for b in bs]:
        for p in range(per_building):
            arrays = {d: rng.integers(0, 256, (S, S, 3), dtype=np.uint8) for d in RGB_DOMAINS}
            arrays["segment_semantic"] = rng.integers(0, 18, (S, S), dtype=np.uint8)
            arrays.update({d: rng.integers(0, top, (S, S)).astype(np.uint16) for d, top in UINT16_DOMAINS.items()})
            for domain, array in arrays.items():
                save(array, root / domain / building / f"point_{p}_view_0_domain_{domain}.png")
                written[building, p, domain] = array
    return written


@pytest.fixture
def taskonomy(tmp_path):
    return tmp_path / "taskonomy", write_taskonomy(tmp_path / "taskonomy")


def test_taskonomy_reads_splits_by_building_with_standleys_normalisations(taskonomy):
    root, written = taskonomy
    dataset = DATASETS.get("taskonomy")(root=str(root), height=S, width=S,
                                        tasks_read=("seg", "depth", "normal", "edge", "shading", "keypoint",
                                                    "texture", "curvature"))
    assert [dataset.split_size(s) for s in ("train", "val", "test")] == [4, 2, 2]
    train = dataset.load("train")
    raw = {d: a.astype(np.float64) for (b, p, d), a in written.items() if (b, p) == ("allensville", 1)}
    valid = raw["depth_zbuffer"] < 8192
    assert (~valid).any() and valid.any()
    t = {k: v[1].float().numpy() for k, v in train.targets.items()}
    assert np.array_equal(train.images[1].numpy(), np.moveaxis(written["allensville", 1, "rgb"], -1, 0))
    assert np.array_equal(t["seg"], np.where(raw["segment_semantic"] == 0, -1, raw["segment_semantic"]))

    def close(ours, expected):
        assert np.array_equal(np.isnan(ours), np.isnan(expected))
        np.testing.assert_allclose(np.nan_to_num(ours), np.nan_to_num(expected), rtol=1e-3, atol=1e-3)

    close(t["depth"][0], np.where(valid, (raw["depth_zbuffer"] - 1500) / 1000, np.nan))
    close(t["edge"][0], np.where(valid, (raw["edge_occlusion"] - 56.0248) / 239.1265, np.nan))
    close(t["keypoint"][0], (raw["keypoints2d"] - 50) / 100)  # not masked
    close(t["texture"][0], (raw["edge_texture"] - 718) / 1070)
    close(t["shading"][0], np.where(valid, (raw["reshading"].mean(-1) / 255 - 0.4962) / 0.2846, np.nan))
    normal = np.moveaxis((raw["normal"] / 255 - 0.5) * 2, -1, 0) * valid  # invalid normals all-zero
    close(t["normal"], normal)
    curvature = (raw["principal_curvature"][..., :2] / 255 - [0.5175, 0.4987]) / [0.1373, 0.0359]
    close(t["curvature"], np.where(valid, np.moveaxis(curvature, -1, 0), np.nan))


def test_taskonomy_resizes_and_caps_a_split_with_a_seeded_subset(taskonomy):
    root, written = taskonomy
    make = lambda **kw: DATASETS.get("taskonomy")(root=str(root), height=16, width=24, **kw)  # noqa: E731
    checkerboard = np.where(np.indices((S, S)).sum(0) % 2 == 0, 0, 17).astype(np.uint8)
    save(checkerboard, root / "segment_semantic" / "collierville" / "point_0_view_0_domain_segment_semantic.png")
    split = make().load("val")
    assert set(split.targets["seg"][0].unique().tolist()) <= {-1, 17}  # bilinear would blend 0 and 17
    assert split.images.shape == (2, 3, 16, 24) and split.targets["depth"].shape == (2, 1, 16, 24)
    assert set(split.targets) == {"seg", "depth", "normal", "edge", "shading", "keypoint", "texture"}
    assert set(split.targets["seg"].unique().tolist()) <= set(range(-1, 18))  # nearest: no blended label
    capped = make(limit={"train": 3})
    assert capped.split_size("train") == 3 and capped.records("train") == make(limit={"train": 3}).records("train")
    assert len({tuple(make(limit={"train": 2}, seed=s).records("train")) for s in range(6)}) > 1


def test_taskonomy_missing_pieces_fail_fast_with_the_fix(taskonomy, tmp_path):
    root, _ = taskonomy
    dataset = DATASETS.get("taskonomy")
    with pytest.raises(DatasetError, match=r"split file .*nowhere.csv not found .*split_file"):
        dataset(root=str(root), split_file=str(tmp_path / "nowhere.csv")).require()
    (root / "rgb" / "darden").rename(root / "rgb" / "elsewhere")
    with pytest.raises(DatasetError, match=r"split test: building folders \['darden'\] not found.*give a split_file"):
        dataset(root=str(root)).require()
    with pytest.raises(DatasetError, match="tasks_read: unknown"):
        dataset(root=str(root), tasks_read=("seg", "mist"))


def test_taskonomy_data_check_names_every_bad_file(taskonomy, capsys):
    root, _ = taskonomy
    (root / "normal" / "beechwood" / "point_0_view_0_domain_normal.png").write_bytes(b"not a png")
    save(np.full((S, S), 20, np.uint8),
         root / "segment_semantic" / "darden" / "point_1_view_0_domain_segment_semantic.png")
    save(np.zeros((S, S + 1), np.uint16),
         root / "keypoints2d" / "collierville" / "point_0_view_0_domain_keypoints2d.png")
    (root / "edge_texture" / "allensville" / "point_1_view_0_domain_edge_texture.png").unlink()
    with pytest.raises(DatasetError, match=r"allensville/point_1_view_0_domain_edge_texture.png: file not found"):
        DATASETS.get("taskonomy")(root=str(root), height=S, width=S).load("train")
    assert main(["data", "check", "taskonomy", str(root)]) == 1
    out = capsys.readouterr().out
    assert "point_0_view_0_domain_normal.png: cannot be read as an image" in out
    assert "darden/point_1_view_0_domain_segment_semantic.png: labels up to 20, expected 0..17" in out
    assert "collierville/point_0_view_0_domain_keypoints2d.png: size 33x32, its RGB image is 32x32" in out
    assert "allensville/point_1_view_0_domain_edge_texture.png: file not found" in out


@pytest.mark.parametrize("method", ["supervised", "jtr", "mtpsl"])
def test_masked_taskonomy_targets_train_to_finite_losses(taskonomy, method):
    """Masked pixels are NaN in the L1 targets; no loss, regularizer or metric may see them."""
    root, _ = taskonomy
    dataset = DATASETS.get("taskonomy")(root=str(root), height=S, width=S)
    tasks = dataset.tasks()
    split = dataset.load("train")
    images, targets = split.batch(torch.arange(4), tasks)
    assert torch.isnan(targets["depth"]).any()
    torch.manual_seed(0)
    recipe = Recipe(METHODS.get(method), tasks, SegNet(tasks, 0.0625))
    mask = torch.from_numpy(np.eye(4, len(tasks), dtype=np.float32) + np.eye(4, len(tasks), 2, dtype=np.float32))
    logs = recipe.train_step(torch.optim.Adam(recipe.parameters(), 1e-3), images, targets, mask)
    assert logs and all(torch.isfinite(v) for v in logs.values())
    meter = tasks["depth"].meter()
    meter.update(torch.zeros_like(targets["depth"]), targets["depth"])
    assert np.isfinite(meter.compute()["l1"])


# -------------------------------------------------------------------------------------------- PASCAL VOC
def write_voc(root, train=("2008_000002", "2008_000003", "2009_000010"), val=("2007_000033", "2007_000042"),
              seed=0):
    """VOC 2012 + SBD as DeepLab arranges it; images of different sizes, labels with boundary 255."""
    rng = np.random.default_rng(seed)
    written = {}
    for ids, folder, palette in ((train, "SegmentationClassAug", False), (val, "SegmentationClass", True)):
        for k, image_id in enumerate(ids):
            h, w = 30 + 4 * k, 40 - 3 * k
            label = np.zeros((h, w), np.uint8)
            label[5:15, 5:20] = rng.integers(1, 21)
            label[4, :] = 255
            label[h - 1, w - 1] = 7  # one pixel: lost by a resize, but a class present in the image
            save(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), root / "JPEGImages" / f"{image_id}.jpg")
            save(label, root / folder / f"{image_id}.png", palette=palette)
            written[image_id] = label
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train_aug.txt").write_text("\n".join(train) + "\n")
    (lists / "val.txt").write_text("\n".join(val) + "\n")
    return written


def test_pascal_voc_trains_on_train_aug_and_derives_cls_from_the_full_resolution_seg(tmp_path):
    written = write_voc(tmp_path)
    dataset = DATASETS.get("pascal_voc")(root=str(tmp_path), height=16, width=16)
    train, test = dataset.load("train"), dataset.load("test")
    assert train.images.shape == (3, 3, 16, 16) and len(test) == 2
    assert set(train.targets["seg"].unique().tolist()) <= set(range(-1, 21)) and (train.targets["seg"] == -1).any()
    for i, image_id in enumerate(["2008_000002", "2008_000003", "2009_000010"]):
        present = {c - 1 for c in np.unique(written[image_id]) if 0 < c < 21}
        assert set(train.targets["cls"][i].nonzero().flatten().tolist()) == present
        assert 6 in present  # class 7 occupies one pixel: present even where the resize drops it
    assert torch.equal(dataset.load("val").images, test.images)
    held_out = DATASETS.get("pascal_voc")(root=str(tmp_path), height=16, width=16, val=1)
    assert held_out.split_size("train") == 2 and torch.equal(held_out.load("val").images[0], train.images[2])


def test_pascal_voc_problems_are_named(tmp_path, capsys):
    write_voc(tmp_path)
    (tmp_path / "JPEGImages" / "2008_000003.jpg").write_bytes(b"broken")
    save(np.full((30, 40), 22, np.uint8), tmp_path / "SegmentationClassAug" / "2008_000002.png")
    save(np.zeros((10, 10), np.uint8), tmp_path / "SegmentationClass" / "2007_000042.png")
    assert main(["data", "check", "pascal_voc", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "JPEGImages/2008_000003.jpg: cannot be read as an image" in out
    assert "SegmentationClassAug/2008_000002.png: labels [22] outside 0..20 and 255" in out
    assert "SegmentationClass/2007_000042.png: size 10x10, its RGB image is 37x34" in out
    lists = tmp_path / "ImageSets" / "Segmentation"
    (lists / "train_aug.txt").write_text("2008_000002\n2007_000033\n")
    with pytest.raises(DatasetError, match="1 images of val.txt are also in train_aug.txt"):
        DATASETS.get("pascal_voc")(root=str(tmp_path)).require()
    (lists / "train_aug.txt").write_text("2008_000002\n")
    (lists / "val.txt").write_text("")
    with pytest.raises(DatasetError, match="pascal_voc: split test has no images under"):
        DATASETS.get("pascal_voc")(root=str(tmp_path)).load("test")


def test_a_pascal_voc_job_trains_deeplab_on_seg_and_cls(tmp_path):
    write_voc(tmp_path / "voc")
    job = copy.deepcopy(TINY_JOB)
    job.update(dataset={"name": "pascal_voc", "root": str(tmp_path / "voc"), "height": 32, "width": 32},
               tasks=["seg", "cls"], model={"name": "deeplab_resnet50", "decoder": "v3", "weights": None,
                                            "task_norm": True})
    job["train"].update(epochs=1, batch_size=2)  # 3 images: the last batch of 1 is left out (ASPP's pooling BN)
    (tmp_path / "run").mkdir()
    result = run_job(job, tmp_path / "run")
    assert set(result["test"]) == {"seg", "cls"} and 0 <= result["test"]["cls"]["jaccard"] <= 1


def test_the_taskonomy_suite_validates_against_a_folder_and_fails_fast_without(taskonomy, tmp_path):
    from conftest import REPO
    from mtlbench.config import SuiteError, load_suite

    root, _ = taskonomy
    with pytest.raises(SuiteError, match="taskonomy: dataset folder .*absent not found"):
        load_suite(REPO / "suites" / "taskonomy_partial.yaml", [f"dataset.root={tmp_path / 'absent'}"])
    loaded = load_suite(REPO / "suites" / "taskonomy_partial.yaml", [f"dataset.root={root}"])
    assert len(loaded.jobs) == 4 * 3 * 3
    assert loaded.jobs[0].config["tasks"] == ["seg", "depth", "normal", "edge", "shading", "keypoint", "texture"]
    augment = loaded.jobs[0].config["train"]["augment"]
    assert (augment["scale_crop"], augment["flip"], augment["photometric_ops"]) == (False, True, 0)


def test_the_paper_000_budget_suites_validate_with_the_papers_numbers(taskonomy, tmp_path, monkeypatch):
    """voc_budget / taskonomy_budget against fixture folders; the split sizes of the real datasets stand in
    (a fixture has a handful of images, far fewer than the paper's purchases need)."""
    from conftest import REPO
    from mtlbench.config import SuiteError, load_suite
    from mtlbench.data.pascal_voc import PascalVOC
    from mtlbench.data.taskonomy import Taskonomy

    write_voc(tmp_path / "voc")
    with pytest.raises(SuiteError, match=r"dataset: the train split has no images"):  # val holds out more than the
        load_suite(REPO / "suites" / "voc_budget.yaml", [f"dataset.root={tmp_path / 'voc'}"])  # fixture has
    monkeypatch.setattr(PascalVOC, "split_size", lambda self, split: 40)
    with pytest.raises(SuiteError, match=r"2 seed sets of 300 need more than the pascal_voc train split's 40 im"):
        load_suite(REPO / "suites" / "voc_budget.yaml", [f"dataset.root={tmp_path / 'voc'}"])
    monkeypatch.setattr(PascalVOC, "split_size", lambda self, split: 10582 - 500)  # train_aug less the val holdout
    voc = load_suite(REPO / "suites" / "voc_budget.yaml", [f"dataset.root={tmp_path / 'voc'}"])
    settings = {s["label"]: {r["allocator"]: r["new_labels"] for r in s["rows"]}
                for s in voc.details["tables"][0]["settings"]}
    assert settings["1:20"]["Equal Budget"] == {"cls": 3150, "seg": 157}  # B = 300 x 21 = 6300
    assert settings["1:30"]["100% cls"] == {"cls": 9300, "seg": 0} and settings["1:3"]["Equal New Images"]["seg"] == 300
    assert sum(job.method == "taba-probe" for job in voc.jobs) == 10

    root, _ = taskonomy
    monkeypatch.setattr(Taskonomy, "split_size", lambda self, split: 160000)
    tasko = load_suite(REPO / "suites" / "taskonomy_budget.yaml", [f"dataset.root={root}"])
    rows = {r["allocator"]: r["new_labels"] for r in tasko.details["tables"][0]["settings"][0]["rows"]}
    assert rows["Equal New Images"] == dict.fromkeys(["seg", "normal", "depth", "keypoint", "edge"], 10000)
    assert rows["100% keypoint"]["keypoint"] == 105000 and tasko.jobs[0].config["dataset"]["tasks_read"] == [
        "seg", "normal", "depth", "keypoint", "edge"]


# --------------------------------------------------------------------------------------------- NYUD-MT
def write_nyud_mt(root, train=("0001", "0002", "0003"), test=("0004", "0005"), height=24, width=32, seed=0):
    """NYUD_MT as Multi-Task-Learning-PyTorch ships it: JPEG images, PNG labels 0..40 (0 unlabelled), depth and
    normals as float .npy arrays (0 / all-zero invalid), gt_sets/train.txt and val.txt."""
    rng = np.random.default_rng(seed)
    written = {}
    for image_id in (*train, *test):
        label = rng.integers(0, 41, (height, width)).astype(np.uint8)
        depth = rng.uniform(0.5, 9.0, (height, width)).astype(np.float32)
        depth[0, :3] = 0
        normal = rng.normal(size=(height, width, 3)).astype(np.float32)
        normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
        normal[1, :2] = 0
        save(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), root / "images" / f"{image_id}.jpg")
        save(label, root / "segmentation" / f"{image_id}.png")
        for folder, array in (("depth", depth), ("normals", normal)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            np.save(root / folder / f"{image_id}.npy", array)
        written[image_id] = (label, depth, normal)
    (root / "gt_sets").mkdir(parents=True)
    (root / "gt_sets" / "train.txt").write_text("\n".join(train) + "\n")
    (root / "gt_sets" / "val.txt").write_text("\n".join(test) + "\n")
    return written


def test_nyud_mt_reads_astmts_layout_with_amtls_label_shift(tmp_path):
    written = write_nyud_mt(tmp_path)
    dataset = DATASETS.get("nyud_mt")(root=str(tmp_path), height=24, width=32)
    train, test = dataset.load("train"), dataset.load("test")
    assert train.images.shape == (3, 3, 24, 32) and train.images.dtype == torch.uint8 and len(test) == 2
    label, depth, normal = written["0002"]
    assert torch.equal(train.targets["seg"][1], torch.from_numpy(label.astype(np.int16) - 1))  # 0 -> -1 ignored
    assert torch.equal(train.targets["depth"][1, 0], torch.from_numpy(depth))  # metres, 0 stays invalid
    assert torch.equal(train.targets["normal"][1], torch.from_numpy(normal).permute(2, 0, 1))
    assert set(dataset.tasks()) == {"seg", "depth", "normal"} and dataset.tasks()["seg"].channels == 40
    small = DATASETS.get("nyud_mt")(root=str(tmp_path), height=12, width=16, val=1).load("val")
    assert small.images.shape == (1, 3, 12, 16)
    assert torch.equal(small.targets["depth"][0, 0], torch.from_numpy(written["0003"][1][1::2, 1::2]))  # nearest


def test_nyud_mt_problems_are_named_and_a_job_trains_on_it(tmp_path, capsys):
    write_nyud_mt(tmp_path)
    np.save(tmp_path / "depth" / "0001.npy", np.zeros((5, 5), np.float32))
    save(np.full((24, 32), 45, np.uint8), tmp_path / "segmentation" / "0004.png")
    assert main(["data", "check", "nyud_mt", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "depth/0001.npy: shape (5, 5), expected (24, 32)" in out and "0004.png: labels up to 45" in out
    with pytest.raises(DatasetError, match="depth/0001.npy"):
        DATASETS.get("nyud_mt")(root=str(tmp_path), height=24, width=32).load("train")
    good = tmp_path / "good"
    write_nyud_mt(good, height=32, width=64)
    job = copy.deepcopy(TINY_JOB)
    job["dataset"] = {"name": "nyud_mt", "root": str(good), "height": 32, "width": 64, "val": 0}
    job["train"]["epochs"] = 1
    result = run_job(job, tmp_path)
    assert set(result["test"]) == {"seg", "depth", "normal"} and result["labels_per_task"]["seg"] == 1


def test_taskonomy_lists_each_building_once_into_a_compact_index_in_path_order(tmp_path, monkeypatch):
    """The split's files as the sorted glob of every building gave them (``limit``'s subset too), from a cached
    index the second time: a full-size split is not listed again at every load."""
    from mtlbench.data import taskonomy as module

    monkeypatch.setenv("MTLBENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "taskonomy"
    write_taskonomy(root, per_building=12)
    dataset = DATASETS.get("taskonomy")(root=str(root), height=S, width=S, limit={"train": 7})
    for split in ("train", "val", "test"):
        files = sorted(p for b in dataset.buildings()[split] for p in (root / "rgb" / b).glob("*.png"))
        if split == "train":
            keep = np.random.default_rng([0, 0]).choice(len(files), 7, replace=False)
            files = [files[i] for i in sorted(keep)]
        assert list(dataset.records(split)) == files and len(dataset.records(split)) == len(files)
        assert list(dataset.records(split)[2:5]) == files[2:5]
    with monkeypatch.context() as patched:
        patched.setattr(module.os, "scandir", lambda folder: (_ for _ in ()).throw(AssertionError("listed again")))
        assert len(dataset.records("val")) == 12  # one building of 12 images, from the cache
    (root / "rgb" / "odd").mkdir()
    (root / "rgb" / "odd" / "thumbnail.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="thumbnail.png: not named point_<p>_view_<v>_domain_rgb.png"):
        module.building_index(root / "rgb" / "odd")
