"""NYUv2 and Cityscapes loaders on fixtures written in MTAN's on-disk layout (one .npy per image and field)."""
import copy

import numpy as np
import pytest
import torch

from conftest import TINY_JOB
from mtlbench.cli import main
from mtlbench.config import SuiteError, load_suite
from mtlbench.data import DATASETS, DatasetError
from mtlbench.train import run_job

H, W = 32, 64


def write_mtan(root, folders, sizes=(3, 2), seed=0, shape=(H, W)):
    """MTAN's layout: root/{train,val}/<folder>/<i>.npy; returns what was written, by split and folder."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, n in zip(("train", "val"), sizes):
        for folder in folders:
            (root / split / folder).mkdir(parents=True)
        for i in range(n):
            normal = rng.normal(size=(*shape, 3))
            normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
            normal[:4] = 0  # invalid pixels
            arrays = {"image": rng.random((*shape, 3)), "depth": rng.random((*shape, 1)) * 5,
                      "normal": normal}
            for folder in folders:
                if folder.startswith("label"):
                    classes = {"label": 13, "label_7": 7, "label_19": 19}[folder]
                    arrays[folder] = rng.integers(-1, classes, shape).astype(np.float32)
                np.save(root / split / folder / f"{i}.npy", arrays[folder])
                written[split, folder, i] = arrays[folder]
    return written


NYU = ("image", "label", "depth", "normal")
CITY = ("image", "label_7", "label_19", "depth")


def test_nyuv2_loads_every_field_in_mtlbench_layout(tmp_path):
    written = write_mtan(tmp_path, NYU)
    dataset = DATASETS.get("nyuv2")(root=str(tmp_path))
    train, test = dataset.load("train"), dataset.load("test")
    assert train.images.shape == (3, 3, H, W) and train.images.dtype == torch.uint8 and len(test) == 2
    image = written["train", "image", 1]
    assert torch.equal(train.images[1], torch.from_numpy(np.round(np.moveaxis(image, -1, 0) * 255).astype(np.uint8)))
    assert torch.equal(train.targets["seg"][2].long(), torch.from_numpy(written["train", "label", 2]).long())
    assert (train.targets["seg"] == -1).any()  # ignore label kept
    assert torch.allclose(test.targets["depth"][0, 0], torch.from_numpy(written["val", "depth", 0][..., 0]).float())
    normal = torch.from_numpy(written["train", "normal", 0]).float()
    assert torch.allclose(train.targets["normal"][0].permute(1, 2, 0), normal)
    assert torch.equal(dataset.load("val").images, test.images)  # val: 0 validates on the test folder
    held_out = DATASETS.get("nyuv2")(root=str(tmp_path), val=1)
    assert held_out.split_size("train") == 2 and torch.equal(held_out.load("val").images[0], train.images[2])


def test_cityscapes_picks_7_or_19_classes(tmp_path):
    written = write_mtan(tmp_path, CITY, sizes=(2, 1))
    for classes in (7, 19):
        split = DATASETS.get("cityscapes")(root=str(tmp_path), classes=classes).load("train")
        labels = torch.from_numpy(written["train", f"label_{classes}", 1]).long()
        assert torch.equal(split.targets["seg"][1].long(), labels)
        assert set(split.targets) == {"seg", "depth"}


def test_corrupt_and_misshapen_files_are_named_and_all_reported(tmp_path, capsys):
    write_mtan(tmp_path, NYU)
    (tmp_path / "train" / "depth" / "1.npy").write_bytes(b"not an array")
    np.save(tmp_path / "val" / "normal" / "0.npy", np.zeros((H, W)))
    labels = np.load(tmp_path / "train" / "label" / "2.npy")
    labels[0, 0] = 13
    np.save(tmp_path / "train" / "label" / "2.npy", labels)
    with pytest.raises(DatasetError, match=r"train/depth/1\.npy: cannot be read"):
        DATASETS.get("nyuv2")(root=str(tmp_path)).load("train")
    assert main(["data", "check", "nyuv2", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "train/depth/1.npy: cannot be read" in out
    assert "val/normal/0.npy: shape (32, 64), expected [H, W, 3]" in out
    assert "train/label/2.npy: labels [13] outside -1 (ignore) .. 12" in out


def test_data_check_passes_a_well_formed_folder(tmp_path, capsys):
    write_mtan(tmp_path, CITY, sizes=(2, 1))
    assert main(["data", "check", "cityscapes", str(tmp_path), "--set", "classes=19"]) == 0
    assert "every file is well-formed (train 2, val 1, test 1 images)" in capsys.readouterr().out


def test_a_missing_file_or_dataset_fails_before_any_job_with_the_layout(tmp_path):
    write_mtan(tmp_path / "nyu", NYU)
    (tmp_path / "nyu" / "train" / "normal" / "2.npy").unlink()
    with pytest.raises(DatasetError, match=r"different or zero numbers of files"):
        DATASETS.get("nyuv2")(root=str(tmp_path / "nyu")).require()
    suite = tmp_path / "nyu.yaml"
    suite.write_text(f"dataset: {{name: nyuv2, root: {tmp_path / 'absent'}}}\ntasks: [seg, depth]\n"
                     "scenarios: [onelabel]\nmethods: [supervised]\nseeds: [0]\n")
    expected = (r"nyu\.yaml: dataset: nyuv2: dataset folder .*absent not found\. "
                r"Expected the MTAN layout: .*train/\{image,label,depth,normal\}.*lorenmt/mtan")
    with pytest.raises(SuiteError, match=expected):
        load_suite(suite, [])


def test_a_job_trains_and_tests_on_the_nyuv2_fixture(tmp_path):
    write_mtan(tmp_path / "nyu", NYU, sizes=(8, 4))
    job = copy.deepcopy(TINY_JOB)
    job["dataset"] = {"name": "nyuv2", "root": str(tmp_path / "nyu"), "val": 0}
    job["train"]["epochs"] = 1
    (tmp_path / "job").mkdir()
    result = run_job(job, tmp_path / "job")
    assert set(result["test"]) == {"seg", "depth", "normal"}
    assert all(np.isfinite(v) for metrics in result["test"].values() for v in metrics.values())


@pytest.mark.parametrize("suite, folders, rows", [("nyu_partial", NYU, 795), ("cityscapes_partial", CITY, 2975)])
def test_the_real_dataset_suites_validate_against_a_folder_and_fail_fast_without(suite, folders, rows, tmp_path):
    """The canonical masks have a row per image of the full training split: a folder of another size is refused
    when the suite loads (tiny 1x1 arrays keep the folders quick to write)."""
    from conftest import REPO
    with pytest.raises(SuiteError, match="not found"):
        load_suite(REPO / "suites" / f"{suite}.yaml", [f"dataset.root={tmp_path / 'absent'}"])
    write_mtan(tmp_path / "small", folders)
    with pytest.raises(SuiteError, match=rf"scenarios\[0\]: canonical .* has {rows} rows .* the train split has 3"):
        load_suite(REPO / "suites" / f"{suite}.yaml", [f"dataset.root={tmp_path / 'small'}"])
    write_mtan(tmp_path, folders, sizes=(rows, 2), shape=(1, 1))
    loaded = load_suite(REPO / "suites" / f"{suite}.yaml", [f"dataset.root={tmp_path}"])
    assert {job.scenario for job in loaded.jobs} <= {"canonical-onelabel", "canonical-randomlabels"}
    assert len(loaded.jobs) == len(loaded.summary()["methods"]) * len(loaded.summary()["scenarios"]) * 3


def write_pool(folder, n=5, size=(H, W), seed=1):
    rng = np.random.default_rng(seed)
    for name in ("image", "depth"):
        (folder / name).mkdir(parents=True)
    depths = []
    for i in range(n):
        np.save(folder / "image" / f"{i}.npy", rng.random((*size, 3)))
        depths.append(rng.random((*size, 1)) * 5)
        np.save(folder / "depth" / f"{i}.npy", depths[-1])
    return depths


def test_nyuv2_depth_only_pool_extends_onelabel(tmp_path):
    """Paper 004 Sec. 4.3: extra images labelled for depth only, appended to every batch."""
    write_mtan(tmp_path / "nyu", NYU, sizes=(6, 2))
    depths = write_pool(tmp_path / "pool")
    dataset = DATASETS.get("nyuv2")(root=str(tmp_path / "nyu"), pool=str(tmp_path / "pool"), pool_size=4)
    assert dataset.split_size("pool") == 4
    pool = dataset.load("pool")
    assert (pool.targets["seg"] == -1).all() and (pool.targets["normal"] == 0).all()
    assert torch.allclose(pool.targets["depth"][3, 0], torch.from_numpy(depths[3][..., 0]).float())
    job = copy.deepcopy(TINY_JOB)
    job["dataset"] = {"name": "nyuv2", "root": str(tmp_path / "nyu"), "val": 0, "pool": str(tmp_path / "pool"),
                      "pool_size": 0}
    job["scenario"] = {"name": "extended", "base": "onelabel", "task": "depth", "per_batch": 2, "unlabeled": 0.0,
                       "unlabeled_per_batch": 0, "mask_seed": 0}
    job["train"]["epochs"] = 1
    (tmp_path / "job").mkdir()
    result = run_job(job, tmp_path / "job")
    mask = np.load(tmp_path / "job" / "mask.npy")
    assert mask.shape == (6 + 5, 3) and (mask[6:] == [0, 1, 0]).all()
    assert all(np.isfinite(v) for metrics in result["test"].values() for v in metrics.values())


def test_a_bad_pool_is_named(tmp_path, capsys):
    write_mtan(tmp_path / "nyu", NYU)
    write_pool(tmp_path / "pool", n=2, size=(H, W + 32))
    with pytest.raises(DatasetError, match=r"pool/image: images of 32x96, the training images are 32x64"):
        DATASETS.get("nyuv2")(root=str(tmp_path / "nyu"), pool=str(tmp_path / "pool")).load("pool")
    np.save(tmp_path / "pool" / "depth" / "1.npy", -np.ones((H, W + 32, 1)))
    assert main(["data", "check", "nyuv2", str(tmp_path / "nyu"), "--set", f"pool={tmp_path / 'pool'}"]) == 1
    assert "pool/depth/1.npy: negative values" in capsys.readouterr().out
    with pytest.raises(DatasetError, match=r"nyuv2 pool: folder .*absent/image not found"):
        DATASETS.get("nyuv2")(root=str(tmp_path / "nyu"), pool=str(tmp_path / "absent")).require()
