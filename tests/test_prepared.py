"""Prepared datasets (``mtlbench data prepare``): the same data as the original files, resumable, and never trained
on when a file is truncated or changed."""
import json

import numpy as np
import pytest
import torch

from mtlbench.cli import main
from mtlbench.config import plugin
from mtlbench.data import DATASETS, prepared
from mtlbench.data.prepared import PreparedDataError
from mtlbench.registry import build

SYNTH = {"name": "synthrooms", "height": 32, "width": 64, "train": 40, "val": 6, "test": 6}


def resolved(spec: dict) -> dict:
    return plugin(DATASETS, spec, "dataset", "test")


def assert_same_split(loaded, original):
    assert torch.equal(loaded.images, original.images)
    assert loaded.targets.keys() == original.targets.keys()
    for task, value in original.targets.items():
        assert loaded.targets[task].dtype == value.dtype and torch.equal(loaded.targets[task].nan_to_num(),
                                                                         value.nan_to_num()), task


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(prepared, "CHUNK", 16)


def test_a_prepared_dataset_yields_exactly_the_data_of_the_dataset(tmp_path, small_chunks):
    config = resolved(SYNTH)
    manifest = prepared.prepare(config, "-", tmp_path / "out")
    assert manifest["complete"] and manifest["splits"]["train"]["count"] == 40
    dataset = build(DATASETS, config)
    for split in ("train", "val", "test"):
        assert_same_split(prepared.load(tmp_path / "out", split, config), dataset.load(split))
    assert prepared.check(tmp_path / "out") == []
    assert prepared.throughput(tmp_path / "out", "train", batch=8, batches=3) > 0


def test_an_interrupted_prepare_continues_where_it_stopped(tmp_path, small_chunks):
    config = resolved(SYNTH)

    class Stop(Exception):
        pass

    def stop(split, done, total):
        if split == "train" and done >= 32:
            raise Stop

    with pytest.raises(Stop):
        prepared.prepare(config, "-", tmp_path / "out", stop)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["splits"]["train"]["done"] == 32 and not manifest["complete"]
    assert "did not finish" in prepared.check(tmp_path / "out")[0]
    with pytest.raises(PreparedDataError, match="not a finished preparation"):
        prepared.load(tmp_path / "out", "train", config)
    written = []
    prepared.prepare(config, "-", tmp_path / "out", lambda split, done, total: written.append((split, done)))
    assert written[0] == ("train", 40)  # only the last chunk of train was left
    assert_same_split(prepared.load(tmp_path / "out", "train", config), build(DATASETS, config).load("train"))


def test_a_truncated_or_changed_file_is_named_and_never_loaded(tmp_path, small_chunks):
    config = resolved(SYNTH)
    prepared.prepare(config, "-", tmp_path / "out")
    seg = tmp_path / "out" / "train" / "seg.npy"
    content = seg.read_bytes()
    seg.write_bytes(content[:-100])
    problems = prepared.check(tmp_path / "out")
    assert len(problems) == 1 and str(seg) in problems[0] and "truncated" in problems[0]
    with pytest.raises(PreparedDataError, match="seg.npy"):
        prepared.load(tmp_path / "out", "train", config)
    changed = bytearray(content)
    changed[-1] ^= 0xFF
    seg.write_bytes(bytes(changed))
    assert "SHA-256" in prepared.check(tmp_path / "out")[0]
    assert main(["data", "check", "synthrooms", str(tmp_path / "out")]) == 1


def test_a_folder_of_another_config_is_refused_for_preparing_and_loading(tmp_path, small_chunks):
    config = resolved(SYNTH)
    prepared.prepare(config, "-", tmp_path / "out")
    other = resolved({**SYNTH, "seed": 1})
    with pytest.raises(PreparedDataError, match="another dataset config"):
        prepared.prepare(other, "-", tmp_path / "out")
    with pytest.raises(PreparedDataError, match="not this job's"):
        prepared.load(tmp_path / "out", "train", other)


def test_a_dataset_of_files_is_prepared_record_by_record_from_the_command_line(tmp_path, small_chunks, capsys):
    from test_image_datasets import write_taskonomy

    write_taskonomy(tmp_path / "taskonomy")
    assert main(["data", "prepare", "taskonomy", str(tmp_path / "taskonomy"), str(tmp_path / "out"),
                 "--set", "height=32", "--set", "width=32"]) == 0
    assert "prepared in" in capsys.readouterr().out
    config = resolved({"name": "taskonomy", "root": str(tmp_path / "taskonomy"), "height": 32, "width": 32})
    dataset = build(DATASETS, config)
    for split in ("train", "val", "test"):
        assert_same_split(prepared.load(tmp_path / "out", split, config), dataset.load(split))
    assert main(["data", "check", "taskonomy", str(tmp_path / "out")]) == 0
    assert np.load(tmp_path / "out" / "train" / "images.npy", mmap_mode="r").dtype == np.uint8


def test_a_suite_run_with_prepared_data_reads_it_and_trains_the_same_jobs_to_the_same_results(
        tmp_path, write_suite, small_chunks, monkeypatch):
    """``mtlbench run --prepared DIR``: each job whose dataset config has a prepared folder in DIR reads it (recorded
    as the result's ``data_source``); same ids, same data, so the same test metrics as a run from the dataset."""
    from conftest import TINY_DATASET
    from mtlbench.config import load_suite

    monkeypatch.setenv("MTLBENCH_CPU_KERNELS", "portable")
    path = write_suite({"methods": ["supervised"], "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 8,
                                                             "device": "cpu"}})
    prepared.prepare(resolved(TINY_DATASET), "-", tmp_path / "prepared" / "tiny")
    runs, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)  # bitwise-reproducible kernels, so that both runs can be compared exactly
    try:
        for name, extra in (("files", []), ("prepared", ["--prepared", str(tmp_path / "prepared")])):
            monkeypatch.setenv(prepared.VARIABLE, "")  # the run sets it; undone after the test
            assert main(["run", str(path), "--results", str(tmp_path / name), "--wandb", "disabled", *extra]) == 0
            (job,) = load_suite(path).jobs
            runs[name] = json.loads((tmp_path / name / "tiny" / job.id / "result.json").read_text())
    finally:
        torch.set_num_threads(threads)
    assert runs["files"]["data_source"] == "files"
    assert runs["prepared"]["data_source"] == str((tmp_path / "prepared" / "tiny").resolve())
    assert runs["prepared"]["test"] == runs["files"]["test"]


@pytest.mark.parametrize("method,workers", [("supervised", "0"), ("stl", "2")])
def test_a_streamed_job_trains_on_the_same_batches_as_in_memory_to_the_same_result(
        tiny_job, tmp_path, monkeypatch, one_thread, small_chunks, method, workers):
    """Above the threshold a job reads its batches from the prepared files (DataLoader workers, or none) instead of
    holding them: same batches, so the same losses and metrics as the in-memory path, epoch by epoch."""
    from conftest import preset
    from mtlbench.train import run_job

    tiny_job["method"] = preset(method)
    tiny_job["dataset"] = resolved(tiny_job["dataset"])  # as a suite resolves it, which the manifest records
    prepared.prepare(tiny_job["dataset"], "-", tmp_path / "prepared")
    (tmp_path / "a").mkdir()
    monkeypatch.setenv(prepared.VARIABLE, "")
    plain = run_job(tiny_job, tmp_path / "a")
    monkeypatch.setenv(prepared.VARIABLE, str(tmp_path / "prepared"))
    monkeypatch.setenv(prepared.STREAM_VARIABLE, "0")
    monkeypatch.setenv("MTLBENCH_LOADER_WORKERS", workers)
    (tmp_path / "b").mkdir()
    streamed = run_job(tiny_job, tmp_path / "b")
    assert streamed["data_source"].endswith("(streamed)") and plain["data_source"] == "files"
    assert streamed["test"] == plain["test"]
    for a, b in zip(streamed["history"], plain["history"], strict=True):
        assert a["val"] == b["val"]
        assert {k: v for k, v in a.items() if k.startswith("train/")} == \
            {k: v for k, v in b.items() if k.startswith("train/")}
    assert 0 <= streamed["costs"]["data_wait_share"] < 1


def test_a_streamed_split_reads_rows_in_any_order_with_repeats_and_across_an_appended_pool(tmp_path, small_chunks):
    """Rows come back in the order asked (repeats included: an appended image is drawn again), from the training
    split or the pool appended to it, as the in-memory split indexes them."""
    from mtlbench.data.streaming import MappedSplit, in_memory

    config = resolved({**SYNTH, "pool": 12})
    prepared.prepare(config, "-", tmp_path / "out")
    dataset = build(DATASETS, config)
    memory = dataset.load("train").concat(dataset.load("pool"))
    mapped = MappedSplit.of(tmp_path / "out", prepared.checked_entry(tmp_path / "out", "train", config)).concat(
        MappedSplit.of(tmp_path / "out", prepared.checked_entry(tmp_path / "out", "pool", config)))
    index = torch.tensor([45, 3, 3, 51, 0, 39, 40])
    tasks = dataset.tasks()
    images, targets = mapped.select(["seg", "depth"]).batch(index, tasks)
    expected_images, expected = memory.select(["seg", "depth"]).batch(index, tasks)
    assert torch.equal(images, expected_images) and all(torch.equal(targets[t], expected[t]) for t in expected)
    assert_same_split(in_memory(mapped.subset(index).select(["seg"])), memory.subset(index).select(["seg"]))


def test_prepared_data_asked_for_but_not_found_is_said_not_silently_skipped(tmp_path, monkeypatch, small_chunks):
    config = resolved(SYNTH)
    prepared.prepare(config, "-", tmp_path / "out")
    monkeypatch.setenv(prepared.VARIABLE, str(tmp_path))
    assert prepared.Source.of(config, ["train"]).folder == tmp_path / "out"
    with pytest.warns(UserWarning, match="no complete preparation there holds dataset"):
        assert prepared.Source.of({**config, "seed": 3}, ["train"]).folder is None


def write_fixture(name: str, root):
    """A fixture of the dataset's own on-disk format (the dataset tests' writers) and its config's fields."""
    from test_image_datasets import write_taskonomy, write_voc
    from test_instance_datasets import write_cityscapes, write_coco
    from test_real_datasets import CITY, NYU, write_mtan

    writers = {"nyuv2": (lambda: write_mtan(root, NYU), {}),
               "cityscapes": (lambda: write_mtan(root, CITY, sizes=(2, 1)), {}),
               "pascal_voc": (lambda: write_voc(root), {"height": 16, "width": 16}),
               "coco": (lambda: write_coco(root), {"height": 20, "width": 40, "max_objects": 4}),
               "cityscapes_instances": (lambda: write_cityscapes(root), {"height": 16, "width": 32, "max_objects": 4}),
               "taskonomy": (lambda: write_taskonomy(root), {"height": 32, "width": 32})}
    write, fields = writers[name]
    write()
    return {"name": name, "root": str(root), **fields}


@pytest.mark.parametrize("name", ["nyuv2", "cityscapes", "pascal_voc", "coco", "cityscapes_instances", "taskonomy"])
def test_every_real_dataset_is_prepared_to_exactly_its_own_splits(tmp_path, small_chunks, name):
    """Issue 38's datasets (Taskonomy, NYUv2, Cityscapes, PASCAL VOC, COCO and Cityscapes' instances) in their exact
    on-disk formats: every split's images and targets, set-valued ones included, come back from the prepared folder as
    the dataset loads them, and the folder checks clean."""
    config = resolved(write_fixture(name, tmp_path / name))
    prepared.prepare(config, config["root"], tmp_path / "out")
    dataset = build(DATASETS, config)
    for split in ("train", "val", "test"):
        assert_same_split(prepared.load(tmp_path / "out", split, config), dataset.load(split))
    assert prepared.check(tmp_path / "out") == []
