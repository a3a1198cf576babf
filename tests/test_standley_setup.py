"""Standley et al. 2020's training setup (Sec. 4.1-4.2): the Xception network, the loss-plateau schedule of the
authors' code and the L1 loss on surface normals."""
import numpy as np
import pytest
import scipy.stats
import torch

from mtlbench.data.synthrooms import SynthRooms
from mtlbench.data.taskonomy import Taskonomy
from mtlbench.ids import job_id
from mtlbench.models.costs import model_cost
from mtlbench.models.registry import parameter_count
from mtlbench.tasks import Normal
from mtlbench.train import run_job
from mtlbench.train.optim import SCHEDULERS

FIVE = ("seg", "depth", "normal", "keypoint", "edge")


def test_the_full_size_encoder_has_the_papers_parameters_and_multiply_adds():
    """Sec. 4.2: "The full-sized encoder had about 4 million parameters", one SNT is "2.28 billion multiply-adds" at
    256x256, and "every decoder has about 116,000 parameters"."""
    encoder = model_cost({"name": "xception", "width": 1.0}, {}, 256, 256)
    assert encoder.parameters == pytest.approx(4.0e6, rel=0.05)
    assert encoder.macs == pytest.approx(2.28e9, rel=0.02)
    tasks = Taskonomy(tasks_read=FIVE).tasks()
    for name, task in tasks.items():
        decoder = parameter_count({"name": "xception"}, {name: task}) - encoder.parameters
        assert decoder == pytest.approx(116_000, rel=0.02), name


def test_the_network_predicts_every_task_at_the_input_size_from_one_shared_representation():
    from mtlbench.models.xception import XceptionTaskonomy

    tasks = SynthRooms().tasks()
    net = XceptionTaskonomy({t: tasks[t] for t in FIVE}, width=0.25).eval()
    preds, feature = net(torch.randn(2, 3, 48, 80), return_feature=True)
    assert {t: p.shape[1:] for t, p in preds.items()} == {t: (tasks[t].channels, 48, 80) for t in FIVE}
    assert feature.shape == (2, 256, 3, 5)  # stride 16, the representation 256 wide at every width
    shared = {id(p) for p in net.shared_parameters()}
    assert id(net.last_shared_layer()) in shared
    assert not shared & {id(p) for p in net.decoders.parameters()}
    with pytest.raises(ValueError, match="dense tasks only"):
        XceptionTaskonomy({"cls": tasks["cls"]})


def reference_decays(losses, batch, steps_per_epoch, window_images, max_window_images, warmup_epochs):
    """The steps after which the authors' rule (train_taskonomy.py, learning_rate_schedule) halves the rate, on a
    list of per-step losses, with scipy's paired t-test."""
    history, decays, last = [], [], 0
    for step, loss in enumerate(losses):
        history.append(loss)
        if step // steps_per_epoch < warmup_epochs:
            continue
        window = window_images // batch
        if len(history) - last > window:
            a, b = sorted(history[-window:-window * 5 // 8]), sorted(history[-window * 3 // 8:])
            a, b = a[int(len(a) * .05):int(len(a) * .95)], b[int(len(b) * .05):int(len(b) * .95)]
            n = min(len(a), len(b))
            t, p = scipy.stats.ttest_rel(a[:n], b[:n])
            if t < 0 or p > .99:
                last = len(history)
                decays.append(step + 1)
                window_images = min(max_window_images, 2 * window_images)
    return decays


def test_the_loss_plateau_schedule_halves_the_rate_where_the_authors_rule_does():
    """A loss that falls, flattens, then rises: the schedule decays after the very steps the code's rule does (scipy's
    t-test against the device-side one), each time to the initial rate x 0.5^decays, its window doubling."""
    rng = np.random.default_rng(0)
    steps = np.arange(3000)
    losses = (np.exp(-steps / 300) + 0.002 * np.maximum(steps - 2000, 0) / 100 + rng.normal(0, 0.02, 3000)).tolist()
    rule = SCHEDULERS.get("loss_plateau")(window_images=1600, max_window_images=6400, warmup_epochs=2)
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=0.2)
    scheduler = rule.build(optimizer, epochs=30, steps_per_epoch=100, batch_size=8)
    expected = reference_decays(losses, 8, 100, 1600, 6400, 2)
    decays, rates = [], []
    for step, loss in enumerate(losses):
        before = optimizer.param_groups[0]["lr"]
        scheduler.step(torch.tensor(loss))
        if optimizer.param_groups[0]["lr"] != before:
            decays.append(step + 1)
            rates.append(optimizer.param_groups[0]["lr"])
    assert len(expected) >= 3 and decays == expected
    assert rates == pytest.approx([0.2 * 0.5 ** k for k in range(1, len(rates) + 1)])
    assert scheduler.window_images == 6400


def test_the_schedule_ends_training_below_its_minimum_rate_and_a_resumed_job_stays_ended(tiny_job, tmp_path):
    """Training stops after the epoch in which the rate fell below ``min_lr`` (the code's check before each epoch):
    that epoch is tested as the last, and a second run of the finished job trains nothing more."""
    tiny_job["train"].update(epochs=6, optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0},
                             scheduler={"name": "loss_plateau", "window_images": 64, "max_window_images": 64,
                                        "factor": 0.5, "min_lr": 0.009, "warmup_epochs": 1})
    tiny_job["dataset"] = {**tiny_job["dataset"], "train": 32}
    result = run_job(tiny_job, tmp_path)
    epochs = [record["epoch"] for record in result["history"]]
    assert 2 <= len(epochs) < 6 and result["test"]
    assert result["history"][-1]["lr"] == pytest.approx(0.005)  # the epoch after the first decay was not trained
    seconds = [record["seconds"] for record in result["history"]]
    assert result["costs"]["epoch_seconds"] == pytest.approx(sum(seconds) / len(seconds))  # the epochs it trained
    again = run_job(tiny_job, tmp_path)
    assert [r["epoch"] for r in again["history"]] == epochs and again["test"] == result["test"]


def test_the_l1_normal_loss_regresses_the_raw_output_and_angles_use_its_direction():
    """Sec. 4.1's L1 on normals: the mean absolute difference over channels and valid pixels of the raw prediction;
    the angle metrics read the prediction's direction, so a prediction twice the target's length scores 0 degrees."""
    target = torch.nn.functional.normalize(torch.randn(2, 3, 4, 4), dim=1)
    target[0, :, 0, 0] = 0  # an invalid pixel
    raw = 2 * target
    l1, cosine = Normal("normal", 3, loss="l1"), Normal("normal", 3)
    assert torch.equal(l1.postprocess(raw), raw)
    expected = torch.stack([target[i].abs().mean(0)[target[i].abs().sum(0) > 0].mean() for i in range(2)])
    torch.testing.assert_close(l1.loss_per_image(raw, target), expected)
    meter = l1.meter()
    meter.update(raw, target)
    assert meter.compute()["mean_angle"] == pytest.approx(0.0, abs=0.05)
    assert cosine.loss_per_image(cosine.postprocess(raw), target) == pytest.approx(torch.zeros(2), abs=1e-6)
    with pytest.raises(ValueError, match="loss 'l2' unknown"):
        Normal("normal", 3, loss="l2")


def test_the_normal_loss_setting_keeps_every_existing_id(tiny_job):
    """``dataset.normal_loss`` at its default (cosine) trains as before, so the job's id is unchanged; l1 is another
    job."""
    before = job_id(tiny_job)
    assert job_id({**tiny_job, "dataset": {**tiny_job["dataset"], "normal_loss": "cosine"}}) == before
    assert job_id({**tiny_job, "dataset": {**tiny_job["dataset"], "normal_loss": "l1"}}) != before
    assert SynthRooms(normal_loss="l1").tasks()["normal"].loss == "l1"
    assert Taskonomy(normal_loss="l1").tasks()["normal"].loss == "l1"


def test_a_job_trains_with_the_papers_setup_and_its_grouping_network_is_reported_at_its_best_validation_epoch(
        tiny_job, tmp_path):
    """The Xception network with L1 normals under the plateau schedule trains to finite losses; the grouping
    leaderboard's best_val reports each network's epoch of lowest summed validation loss, with that epoch's test
    losses, and refuses a job tested only at its last epoch."""
    from mtlbench.leaderboard.aggregate import LeaderboardError
    from mtlbench.tracks.grouping.leaderboard import at_lowest_validation_loss

    tiny_job["dataset"] = {**tiny_job["dataset"], "normal_loss": "l1"}
    tiny_job["model"] = {"name": "xception", "width": 0.25}
    tiny_job["scenario"]["name"] = "full"
    tiny_job["train"].update(epochs=3, test_every_epoch=True,
                             optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4},
                             scheduler={"name": "loss_plateau", "window_images": 64, "max_window_images": 128})
    result = run_job(tiny_job, tmp_path)
    losses = [sum(r["val"][t]["loss"] for t in r["val"]) for r in result["history"]]
    assert all(np.isfinite(losses)) and len(losses) == 3
    chosen = at_lowest_validation_loss({**result, "job_id": "x"})
    best = int(np.argmin(losses))
    assert chosen["val"] == result["history"][best]["val"] and chosen["test"] == result["history"][best]["test"]
    assert chosen["selected_epochs"] == {"mtl": best + 1}
    with pytest.raises(LeaderboardError, match="test_every_epoch"):
        at_lowest_validation_loss({**result, "job_id": "x", "history": [{k: v for k, v in r.items() if k != "test"}
                                                                        for r in result["history"]]})
