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
    assert job.config["train"]["optimizer"] == {"name": "adam", "lr": 1e-4, "weight_decay": 0.0}
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
    ({"model": {"name": "deeplab_resnet50"}, "methods": ["mtpsl"]},
     "methods[0].regularizer: mtpsl is defined for models ['segnet'] only, not 'deeplab_resnet50'"),
    ({"model": {"name": "deeplab_resnet50"}, "dataset": {"name": "synthrooms", "height": 36}},
     "dataset.height: 36 is not a multiple of 8"),
])
def test_partial_label_methods_and_scenarios_are_checked_before_training(write_suite, overrides, expected):
    message, _ = error_of(write_suite, overrides)
    assert expected in message, message
