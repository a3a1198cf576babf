"""Progress a person can follow: the trainer's step hook, the suite's tally and its estimate of the end, the live
view on a terminal, plain lines elsewhere, and workers' events reaching the parent."""
import io
import json

import pytest
import torch

from mtlbench.jobs import Hooks, Step, new_job
from mtlbench.runner.progress import Position, Progress, Relay, Timings, replay
from mtlbench.train import run_job


def test_each_training_step_says_where_its_epoch_stands(tiny_job, tmp_path):
    steps, records = [], []
    run_job(tiny_job, tmp_path, Hooks(epoch=records.append, step=steps.append))
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:
        epoch = [s for s in steps if s.epoch == record["epoch"]]
        assert [s.batches for s in epoch] == list(range(1, len(epoch) + 1)) and epoch[-1].batches == epoch[-1].of
        assert {(s.stage, s.epochs) for s in epoch} == {("mtl", 2)}
        assert all(a.images < b.images and a.seconds <= b.seconds for a, b in zip(epoch, epoch[1:]))
        assert epoch[-1].images == pytest.approx(record["images_per_second"] * record["seconds"])
        # the losses a bar shows are those the epoch's record averages (summed over the tasks)
        trained = sum(value for key, value in record.items() if key.startswith("train/loss/"))
        assert sum(s.loss() for s in epoch) / len(epoch) == pytest.approx(trained, rel=1e-5)


def job(method, seed=0, scenario="onelabel"):
    return new_job("s", {"dataset": {"name": "synthrooms"}, "scenario": {"name": scenario}, "method": {"name": method},
                         "seed": seed})


def test_the_end_is_estimated_from_finished_jobs_of_the_closest_kind():
    a0, a1, b0, b1, c0 = job("a"), job("a", 1), job("b"), job("b", 1), job("c", 0, "full")
    progress = Progress([a0, a1, b0, b1, c0], stream=io.StringIO(), live=False, workers=2)
    assert progress.eta() is None and "ETA after the first job" in progress.tally()
    progress.skipped(a0, 10.0)  # an earlier run's job, its wall_seconds
    assert progress.eta() == pytest.approx((10 + 10 + 10 + 10) / 2)  # every job left expected to take a0's time
    progress.finished(b1, 30.0)
    timings = progress.timings
    assert timings.estimate(a1) == 10 and timings.estimate(b0) == 30  # the same method and scenario
    assert timings.estimate(c0) == 20  # no job of c yet: the mean over the dataset's jobs
    assert progress.eta() == pytest.approx((10 + 30 + 20) / 2)
    progress.failed(c0, "out of memory")
    assert progress.eta() == pytest.approx((10 + 30) / 2)
    assert progress.tally().startswith("2/5 done · 1 failed")
    assert Timings.kinds(c0)[-1] == ()


def test_a_method_none_of_whose_jobs_finished_is_projected_from_the_pace_of_its_running_ones():
    other, d0, d1 = job("a"), job("d"), job("d", 1)
    progress = Progress([other, d0, d1], stream=io.StringIO(), live=False)
    progress.finished(other, 5.0)
    progress.started(d0)
    progress.began[d0.id] -= 30.0  # started 30 s ago
    progress.position(d0, Position("mtl", 2, 4, 5, 10, 40, 3.0, 1.0))  # 1.5 of its 4 epochs
    assert progress.eta() == pytest.approx((80 - 30) + 80, rel=1e-3)  # rather than a's 5 s per job
    progress.position(d0, Position("mtl", 1, 4, 1, 10, 8, 0.1, 1.0))  # 2.5% in: too early to say
    assert progress.eta() == pytest.approx(5.0 + 0.0, abs=1e-6)


def a_step(batches=3, of=10, loss=1.5):
    return Step("mtl", 1, 2, batches, of, 8 * batches, 0.5, {"loss/seg": torch.tensor(loss - 0.5),
                                                              "loss/depth": torch.tensor(0.5), "grad_norm": 9.0})


def test_off_a_terminal_a_suite_prints_a_line_per_epoch_and_none_per_step():
    stream = io.StringIO()
    first, second = job("a"), job("b")
    progress = Progress([first, second], stream=stream, live=False)
    progress.started(first)
    for batches in range(1, 11):
        progress.step(first, a_step(batches))
    progress.epoch(first, {"stage": "mtl", "epoch": 1, "epochs": 2, "images_per_second": 40.0,
                           "val": {"seg": {"miou": 0.25}}})
    progress.finished(first, 12.0)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and "seg.miou=0.25" in lines[1]
    assert lines[2].endswith("[1/2 done · 0:00 elapsed · ETA ~0:12]")


def test_on_a_terminal_each_running_job_has_a_bar_under_the_suites_tally():
    stream = io.StringIO()
    first, second = job("a"), job("b")
    progress = Progress([first, second], stream=stream, live=True)
    progress.started(first)
    progress.step(first, a_step(3, 10, loss=1.5))
    progress.step(first, a_step(4, 10, loss=9.0))  # within STEP_INTERVAL of the last redraw: not drawn
    progress.display.refresh()
    shown = stream.getvalue()
    assert f"{first.id} a s0" in shown and "mtl 1/2 · 3/10 · 48 img/s · loss 1.5" in shown and "9" not in \
        shown.split("loss 1.5")[-1].split("\n")[0]
    assert "0/2 done · 1 running" in shown
    progress.finished(first, 5.0)
    progress.failed(second, "diverged")
    progress.close()
    after = stream.getvalue().rsplit("FAILED", 1)[1]  # the view's last rows, after the last event's line
    assert "1/2 done · 1 failed" in after and "ETA" not in after and progress.display is None


def test_a_workers_events_reach_the_suites_progress():
    class Queue(list):
        put = list.append

    first = job("a")
    queue, stream = Queue(), io.StringIO()
    relay = Relay(queue)
    relay.started(first)
    relay.step(first, a_step(3))
    relay.step(first, a_step(4))  # too soon after the last: not sent
    relay.failed(first, ValueError("a message, not the exception"))
    progress = Progress([first], stream=stream, live=False)
    for message in queue:
        replay(progress, message)
    assert [m[1] for m in queue] == ["started", "position", "failed"]
    assert queue[1][3] == (Position("mtl", 1, 2, 3, 10, 24, 0.5, 1.5),)
    assert progress.state[first.id] == "failed" and "a message, not the exception" in stream.getvalue()
    json.dumps(queue[2][3])  # what crosses the process boundary is plain data
