"""Suites: a malformed suite fails before any training with a message naming file, field and choices."""
import pytest

from mtlbench.config import SuiteError, load_suite


def error_of(write_suite, overrides, set_=()):
    path = write_suite(overrides)
    with pytest.raises(SuiteError) as error:
        load_suite(path, list(set_))
    return str(error.value), path


@pytest.mark.parametrize("overrides, expected", [
    ({"epochs": 3}, ["epochs: unknown field", "Valid fields here: name, description"]),
    ({"train": {"epoch": 3}}, ["train.epoch: unknown field", "Valid fields here: epochs, batch_size"]),
    ({"methods": ["supervised", "supervisd"]}, ["methods[1]", "unknown method 'supervisd'",
                                                "Did you mean 'supervised'", "stl, supervised"]),
    ({"scenarios": ["onelable"]}, ["scenarios[0].name", "unknown scenario 'onelable'", "Did you mean 'onelabel'"]),
    ({"scenarios": [{"name": "onelabel", "unlabelled": 0.3}]},
     ["scenarios[0]: unknown parameter unlabelled for scenario 'onelabel'", "Valid parameters: unlabeled"]),
    ({"scenarios": [{"name": "onelabel", "unlabeled": "lots"}]}, ["scenarios[0]", "unlabeled"]),
    ({"dataset": {"name": "nyu"}}, ["dataset.name: unknown dataset 'nyu'", "synthrooms"]),
    ({"tasks": ["seg", "dpeth"]}, ["tasks: dpeth not in dataset 'synthrooms'", "Valid tasks: seg, depth"]),
    ({"dataset": {"name": "synthrooms", "height": 48}}, ["dataset.height: 48 is not a multiple of 32"]),
    ({"train": {"epochs": 0}}, ["train.epochs", "greater than 0"]),
    ({"methods": [{"name": "mine", "weighting": "uniformm"}]}, ["methods[0].weighting.name", "Did you mean 'uniform'"]),
    ({"scenarios": [{"name": "mask_file", "path": "nowhere.pth"}]}, ["scenarios[0].path", "nowhere.pth", "not found"]),
    ({"model": {"name": "segnet", "widht": 1}}, ["model: unknown parameter widht", "Valid parameters: width"]),
])
def test_malformed_suite_names_file_field_and_choices(write_suite, overrides, expected):
    message, path = error_of(write_suite, overrides)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message, message


def test_missing_required_field(write_suite, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("dataset: synthrooms\nmethods: [supervised]\nscenarios: [full]\n")
    with pytest.raises(SuiteError, match="tasks: required field is missing"):
        load_suite(path)


def test_expansion_fills_defaults_and_hashes_configs(write_suite):
    suite = load_suite(write_suite({"seeds": [0, 1], "scenarios": ["onelabel", {"name": "randomlabels",
                                                                               "unlabeled": 0.3}]}))
    assert len(suite.jobs) == 2 * 2 * 2
    assert [job.method for job in suite.jobs[:2]] == ["stl", "stl"]  # stl first: others may need its results
    assert len({job.id for job in suite.jobs}) == len(suite.jobs)
    job = suite.jobs[0]
    assert job.config["train"]["optimizer"] == {"name": "adam", "head_lr": None, "lr": 1e-4, "weight_decay": 0.0}
    assert job.config["scenario"] == {"name": "onelabel", "unlabeled": 0.0, "unlabeled_per_batch": 0, "mask_seed": 0}
    assert {j.scenario for j in suite.jobs} == {"onelabel", "randomlabels+30%unlabeled"}
    again = load_suite(write_suite({"seeds": [0, 1], "scenarios": ["onelabel", {"name": "randomlabels",
                                                                               "unlabeled": 0.3}]}))
    assert [j.id for j in again.jobs] == [j.id for j in suite.jobs]


def test_set_overrides_change_the_job_and_its_id(write_suite):
    path = write_suite()
    base = load_suite(path)
    changed = load_suite(path, ["train.epochs=5", "scenarios.0={name: onelabel, unlabeled: 0.5}"])
    assert changed.jobs[0].config["train"]["epochs"] == 5
    assert changed.jobs[0].config["scenario"]["unlabeled"] == 0.5
    assert changed.jobs[0].id != base.jobs[0].id
    with pytest.raises(SuiteError, match="expected KEY=VALUE"):
        load_suite(path, ["train.epochs"])


def test_explicit_recipe_is_resolved_like_a_preset(write_suite):
    suite = load_suite(write_suite({"methods": [{"name": "mine", "weighting": "uniform"}]}))
    method = suite.jobs[0].config["method"]
    assert method == {"name": "mine", "networks": "shared", "supervision": {"name": "full", "per_image": "mean"},
                      "weighting": {"name": "uniform"}, "gradients": {"name": "sum"}, "regularizer": {"name": "none"}}


@pytest.mark.parametrize("overrides, expected", [
    ({"scenarios": ["extended"]}, "'extended' needs extra pool images; set the dataset's 'pool'"),
    ({"scenarios": [{"name": "extended", "task": "albedo"}]}, "scenarios[0].task: 'albedo' is not a task"),
    ({"tasks": ["seg", "cls"], "methods": ["jtr"]}, "methods[0].regularizer: jtr stacks dense maps"),
    ({"tasks": ["seg"], "methods": ["mtpsl"]}, "mtpsl needs at least two tasks"),
    ({"model": {"name": "pyramid", "backbone": "mobilenet_v2", "height": 32, "width": 64}, "methods": ["mtpsl"]},
     "methods[0].regularizer: mtpsl is defined for models ['segnet', 'deeplab_resnet50'] only, not 'pyramid'"),
    ({"model": {"name": "deeplab_resnet50"}, "dataset": {"name": "synthrooms", "height": 36}},
     "dataset.height: 36 is not a multiple of 8"),
])
def test_partial_label_methods_and_scenarios_are_checked_before_training(write_suite, overrides, expected):
    message, _ = error_of(write_suite, overrides)
    assert expected in message, message


@pytest.mark.parametrize("overrides, expected", [
    ({"scenarios": [{"name": "onelabel", "unlabeled": 1.5}]}, "scenarios[0]: unlabeled = 1.5: must lie in [0, 1)"),
    ({"scenarios": [{"name": "randomlabels", "unlabeled": -0.5}]}, "scenarios[0]: unlabeled = -0.5: must lie in [0, 1)"),
    ({"mask_seed": -1}, "mask_seed: Input should be greater than or equal to 0"),
    ({"train": {"device": "tpu"}}, "train.device: 'tpu' is not a device torch knows; use auto, cpu, cuda"),
    ({"tasks": ["seg"], "scenarios": ["randomlabels"]}, "scenarios[0]: randomlabels needs at least 2 tasks"),
    ({"model": {"name": "deeplab_resnet50", "weights": "nowhere.pth"}, "dataset": {"name": "synthrooms"}},
     "model: deeplab_resnet50 cannot be built"),
])
def test_what_would_fail_when_a_job_starts_is_refused_when_the_suite_loads(write_suite, overrides, expected):
    """mtlbench run and mtlbench status load the suite first: these never reach a job (they once failed in its
    error.txt after the run had begun)."""
    message, path = error_of(write_suite, overrides)
    assert expected in message and str(path) in message, message


def test_a_mask_file_with_the_wrong_number_of_rows_is_refused_when_the_suite_loads(write_suite, tmp_path):
    import torch

    torch.save({"labels_weights": torch.ones(10, 3)}, tmp_path / "mask.pth")
    message, _ = error_of(write_suite, {"scenarios": [{"name": "mask_file", "path": str(tmp_path / "mask.pth")}]})
    assert "scenarios[0]" in message and "mask has shape (10, 3), expected (24, 3) for 24 training images" in message


def test_a_local_run_refuses_a_device_or_a_model_this_machine_does_not_have(write_suite, tmp_path, monkeypatch,
                                                                             capsys):
    import torch

    from mtlbench.cli import main
    from mtlbench.runner import preflight

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = write_suite({"train": {"epochs": 1, "device": "cuda"}})
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--wandb", "disabled"]) == 2
    assert "train.device: 'cuda', but this machine has no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before anything was written
    assert main(["status", str(path), "--results", str(tmp_path / "r")]) == 0  # where it runs is not known here
    path = write_suite({"model": {"name": "segnet", "width": 100.0}}, "wide.yaml")
    monkeypatch.setattr(preflight, "memory", lambda device: 24 * 2**30)
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--wandb", "disabled"]) == 2
    err = capsys.readouterr().err
    assert "model: {'name': 'segnet', 'width': 100.0} needs at least 3729.9 GiB" in err and "24.0 GiB of cpu" in err
    assert not (tmp_path / "r").exists()
