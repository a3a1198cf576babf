"""Nothing lost, nothing trained twice, nothing trusted that should not be: unsafe files, paths, claims,
corrupt state, non-finite values, early validation, interrupts, one W&B run per job, and a chaos test."""
import json
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mtlbench.cli import main
from mtlbench.config import SuiteError, load_suite
from mtlbench.files import read_json
from mtlbench.train.kind import Train
from mtlbench.runner import Store
from mtlbench.runner.claims import CLAIM, Claims
from conftest import REPO

FAST = {"epochs": 1, "batch_size": 8, "eval_batch_size": 8, "device": "cpu"}
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}


def run(path, results, *extra):
    return main(["run", str(path), "--results", str(results), "--wandb", "disabled", *extra])


def command(path, results, *extra):
    return [sys.executable, "-m", "mtlbench.cli", "run", str(path), "--results", str(results), "--wandb", "disabled",
            *extra]


def strict(path: Path):
    """result.json parsed as strict JSON: NaN and Infinity are refused."""
    def refuse(constant):
        raise ValueError(f"{constant} in {path}")

    return json.loads(path.read_text(), parse_constant=refuse)


class Payload:
    """Unpickling this runs a shell command: what a hostile mask or checkpoint file would hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# ------------------------------------------------------------------------------------------- no pickle
def test_a_pickle_payload_in_a_mask_file_never_runs(write_suite, tmp_path):
    marker = tmp_path / "owned"
    mask = tmp_path / "mask.pth"
    torch.save({"labels_weights": torch.ones(24, 3), "extra": Payload(marker)}, mask)
    path = write_suite({"scenarios": [{"name": "mask_file", "path": str(mask)}]})
    with pytest.raises(SuiteError, match=r"scenarios\[0\]\.path: .*mask.pth: refused to load this mask file"):
        load_suite(path)
    assert not marker.exists()


def test_a_pickle_payload_in_a_checkpoint_never_runs(write_suite, tmp_path, capsys):
    marker = tmp_path / "owned"
    path = write_suite({"methods": ["supervised"], "train": FAST})
    job = load_suite(path).jobs[0]
    folder = tmp_path / "results" / "tiny" / job.id
    folder.mkdir(parents=True)
    torch.save({"model": Payload(marker), "format": 2}, folder / "checkpoint-mtl.pt")
    assert run(path, tmp_path / "results") == 1
    assert not marker.exists()
    error = (folder / "error.txt").read_text()
    assert "checkpoint-mtl.pt: refused to load this checkpoint" in error and "it asks for" in error
    assert "\x1b" not in error  # torch colours its message; a log file gets plain text


# ------------------------------------------------------------------------------------------ names, paths
@pytest.mark.parametrize("name", ["../x", "a/../../x", "..", ".", "/tmp/elsewhere", "a b"])
def test_a_suite_name_cannot_leave_the_results_folder(write_suite, tmp_path, name):
    with pytest.raises(SuiteError, match=r"name: suite name .*letters, digits"):
        load_suite(write_suite({"name": name}))
    with pytest.raises(SuiteError, match=r"name: suite name"):
        load_suite(write_suite(), [f"name={name}"])


def test_a_leaderboard_name_cannot_leave_its_folder_and_dotted_names_do_not_collide(write_suite, tmp_path, capsys,
                                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["leaderboard", "../../x", "--results", str(tmp_path / "results")]) == 2
    assert "letters, digits" in capsys.readouterr().err
    for name in ("tiny", "tiny.v2"):
        assert run(write_suite({"name": name, "methods": ["supervised"], "train": FAST}), tmp_path / "results") == 0
        assert main(["leaderboard", name, "--results", str(tmp_path / "results")]) == 0
    for name in ("tiny", "tiny.v2"):
        names = {p.name for p in (tmp_path / "results" / name / "leaderboard").iterdir()}
        assert {f"{name}.{suffix}" for suffix in ("md", "csv", "tex", "html")} <= names
    assert not (tmp_path / "leaderboards").exists()  # a user's leaderboard stays in the results folder git ignores


# ----------------------------------------------------------------------------------------------- claims
def test_a_live_claim_is_respected_and_a_stale_or_orphaned_one_taken_over(tmp_path):
    claims = Claims(stale_after=60, beat=0.05)
    held = claims.acquire(tmp_path / "job")
    assert held is not None and claims.acquire(tmp_path / "job") is None  # this process is alive: live claim
    holder = claims.holder(tmp_path / "job")
    assert holder.pid == os.getpid() and holder.heartbeat_age < 60
    old = time.time() - 120
    os.utime(tmp_path / "job" / CLAIM, (old, old))
    time.sleep(0.2)
    assert claims.holder(tmp_path / "job").heartbeat_age < 1  # the heartbeat refreshed it
    held.release()
    assert not (tmp_path / "job" / CLAIM).exists()

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = {"host": os.uname().nodename, "pid": int(gone.stdout), "started": "then", "token": "x"}
    (tmp_path / "job" / CLAIM).write_text(json.dumps(orphan))
    assert claims.holder(tmp_path / "job") is None  # its process is gone
    taken = claims.acquire(tmp_path / "job")
    assert taken is not None
    taken.release()

    (tmp_path / "job" / CLAIM).write_text(json.dumps({**orphan, "host": "another-node", "pid": 1}))
    assert claims.acquire(tmp_path / "job") is None  # another host: only its heartbeat tells, and it is fresh
    os.utime(tmp_path / "job" / CLAIM, (old, old))
    assert claims.acquire(tmp_path / "job") is not None  # stale heartbeat: taken over


def test_status_shows_who_runs_a_job(write_suite, tmp_path, capsys):
    path = write_suite({"methods": ["supervised"], "train": FAST})
    job = load_suite(path).jobs[0]
    held = Claims().acquire(tmp_path / "results" / "tiny" / job.id)
    assert main(["status", str(path), "--results", str(tmp_path / "results"), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["jobs"]
    assert row["state"] == "running" and row["claim"]["pid"] == os.getpid()
    held.release()


def test_two_runners_on_one_results_folder_train_each_job_once(write_suite, tmp_path):
    path = write_suite({"methods": ["stl", "supervised", "amtl"], "seeds": [0, 1], "tasks": ["seg", "normal"],
                        "train": {**FAST, "epochs": 2}})
    results = tmp_path / "results"
    runners = [subprocess.Popen(command(path, results, "--claim-timeout", "60"), env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    logs = [runner.communicate(timeout=600) for runner in runners]
    assert [runner.returncode for runner in runners] == [0, 0], logs
    jobs = load_suite(path).jobs
    starts = [match for out, _ in logs for match in re.findall(r"\] start (\w{12}) ", out)]
    assert sorted(starts) == sorted(job.id for job in jobs)  # every job started once, by one of the two
    assert all(Store(results).is_done(job) for job in jobs)
    assert not list(results.glob("tiny/*/claim.json*"))


def test_of_two_runners_only_the_one_that_finished_the_last_job_logs_the_leaderboard_run(write_suite, tmp_path):
    path = write_suite({"methods": ["supervised"], "seeds": [0, 1], "train": FAST})
    results = tmp_path / "results"
    runners = [subprocess.Popen(command(path, results, "--wandb", "offline"), env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=tmp_path) for _ in range(2)]
    logs = [runner.communicate(timeout=600) for runner in runners]
    assert [runner.returncode for runner in runners] == [0, 0], logs
    logged = [out for out, _ in logs if "logged the leaderboard of tiny to W&B (offline)" in out]
    assert len(logged) == 1, logs
    last = Store(results).last_finished("tiny", [job.id for job in load_suite(path).jobs])
    assert re.search(rf"\] done {last['job_id']} ", logged[0])  # the runner whose job finished last
    again = subprocess.run(command(path, results, "--wandb", "offline"), env=ENV, capture_output=True, text=True,
                           timeout=600, cwd=tmp_path)  # a third run finds everything done: it logs nothing
    assert again.returncode == 0 and "is logged by the run that finished its last job" in again.stdout


# ------------------------------------------------------------------------------------------ corrupt state
def test_a_corrupt_result_checkpoint_or_record_is_moved_aside_and_the_job_retrains(write_suite, tmp_path, capsys):
    path = write_suite({"methods": ["supervised"], "seeds": [0, 1], "train": FAST})
    results = tmp_path / "results"
    assert run(path, results) == 0
    first, second = load_suite(path).jobs
    (results / "tiny" / first.id / "result.json").write_text('{"schema": 1, "job_')  # truncated
    (results / "tiny" / second.id / "result.json").unlink()
    (results / "tiny" / second.id / "checkpoint-mtl.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    (results / "tiny" / second.id / "metrics.jsonl").write_text('{"epoch": 1, "val"\n')
    (results / "tiny" / second.id / "result.json.123.tmp").write_text("{")
    capsys.readouterr()
    assert main(["status", str(path), "--results", str(results), "--json"]) == 0
    assert [row["state"] for row in json.loads(capsys.readouterr().out)["jobs"]] == ["pending", "pending"]
    with pytest.warns(UserWarning) as caught:
        assert run(path, results) == 0
    messages = "\n".join(str(w.message) for w in caught)
    assert f"{first.id}/result.json" in messages and "moved aside" in messages
    assert "checkpoint-mtl.pt: cannot read this checkpoint" in messages
    for job in (first, second):
        folder = results / "tiny" / job.id
        assert strict(folder / "result.json")["job_id"] == job.id
        records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in records] == list(range(1, FAST["epochs"] + 1))  # written again, never read
        assert not list(folder.glob("*.tmp")) and not list(folder.glob("checkpoint-*.pt"))
    assert list((results / "tiny" / first.id).glob("result.json.corrupt-*"))

    leftovers = [results / "tiny" / first.id / name for name in ("checkpoint-mtl.pt", "metrics.jsonl.77.tmp")]
    for leftover in leftovers:  # what a writer killed after result.json would leave beside it
        leftover.write_bytes(b"stale")
    assert run(path, results) == 0
    assert not any(leftover.exists() for leftover in leftovers)


def test_a_checkpoint_of_random_bytes_is_set_aside_and_the_job_retrains(write_suite, tmp_path):
    """Random bytes fail torch's restricted unpickler exactly as a hostile pickle does; only a pickle is refused as
    unsafe, anything else is corrupt: moved aside, trained again, and the next run finds the job done."""
    path = write_suite({"methods": ["supervised"], "train": FAST})
    job = load_suite(path).jobs[0]
    folder = tmp_path / "results" / "tiny" / job.id
    folder.mkdir(parents=True)
    (folder / "checkpoint-mtl.pt").write_bytes(random.Random(0).randbytes(5000))
    done = subprocess.run(command(path, tmp_path / "results"), env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "checkpoint-mtl.pt" in line]
    assert warned == [f"warning: {folder / 'checkpoint-mtl.pt'}: cannot read this checkpoint (not a file torch.save "
                      f"writes: neither a zip archive with a pickle nor a pickle); moved aside to "
                      f"{next(folder.glob('checkpoint-mtl.pt.corrupt-*')).name}"]  # one line, the file named once
    assert strict(folder / "result.json")["job_id"] == job.id
    assert run(path, tmp_path / "results") == 0


def test_status_names_a_corrupt_result(write_suite, tmp_path, capsys):
    path = write_suite({"methods": ["supervised"], "train": FAST})
    assert run(path, tmp_path / "results") == 0
    job = load_suite(path).jobs[0]
    (tmp_path / "results" / "tiny" / job.id / "result.json").write_text('{"schema": 1, "job_')
    capsys.readouterr()
    assert main(["status", str(path), "--results", str(tmp_path / "results")]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(job.id))
    assert "pending (" in line and f"{job.id}/result.json: not valid JSON" in line and "moves it aside" in line


def test_a_full_disk_while_checkpointing_says_so_and_leaves_no_temporary_file(write_suite, tmp_path, monkeypatch):
    """A writer that fills the disk half-way through a checkpoint, as ENOSPC does: the job fails with "no space
    left on <folder>", its partial file is gone (it would keep the disk full for the next job), and error.txt
    says why."""
    import errno

    from mtlbench.train import checkpoint

    def fill_the_disk(state, stream):
        stream.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", fill_the_disk)
    path = write_suite({"methods": ["supervised"], "train": FAST})
    assert run(path, tmp_path / "results") == 1
    folder = tmp_path / "results" / "tiny" / load_suite(path).jobs[0].id
    assert not list(folder.glob("*.tmp"))
    headline = (folder / "error.txt").read_text().splitlines()[0]
    assert headline.startswith(f"DiskFull: [Errno 28] no space left on {folder} while writing checkpoint-mtl.pt")


def test_an_error_file_the_disk_cannot_hold_is_never_left_empty(tmp_path, monkeypatch, capsys):
    import errno

    from mtlbench import files
    from mtlbench.jobs import new_job
    from mtlbench.runner.executor import record_failure

    class Full:
        def __init__(self, *args):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    job = new_job("tiny", {"x": 1})
    (tmp_path / "tiny" / job.id).mkdir(parents=True)
    monkeypatch.setattr(files, "open", Full, raising=False)
    record_failure(Store(tmp_path), job, RuntimeError("the job's own error"))
    assert not list((tmp_path / "tiny" / job.id).iterdir())  # neither error.txt nor its temporary file
    assert "could not write error.txt (" in capsys.readouterr().err


def test_the_leaderboard_names_a_corrupt_result_and_leaves_it_out(write_suite, tmp_path, capsys):
    path = write_suite({"methods": ["supervised"], "seeds": [0, 1], "train": FAST})
    results = tmp_path / "results"
    assert run(path, results) == 0
    bad = load_suite(path).jobs[1]
    (results / "tiny" / bad.id / "result.json").write_text("not json")
    capsys.readouterr()
    assert main(["leaderboard", "tiny", "--results", str(results), "--out", str(tmp_path / "board")]) == 0
    err = capsys.readouterr().err
    assert f"{bad.id}/result.json: not valid JSON" in err and f"missing job {bad.id}" not in err
    board = (tmp_path / "board.md").read_text()
    assert "| supervised |" in board and "1/2 seeds" in board and f"missing job {bad.id}" in board


# ------------------------------------------------------------------------------------- honest leaderboards
def test_a_method_with_fewer_seeds_is_marked_never_bold_and_its_missing_jobs_named(write_suite, tmp_path, capsys,
                                                                                   monkeypatch):
    path = write_suite({"methods": ["stl", "supervised"], "seeds": [0, 1], "train": FAST})
    suite = load_suite(path)
    lost = suite.jobs[3]  # supervised, seed 1
    original = Train.run

    def lose_one(self, config, job_dir, hooks, test):
        if Path(job_dir).name == lost.id:
            raise RuntimeError("lost on purpose")
        return original(self, config, job_dir, hooks, test)

    monkeypatch.setattr(Train, "run", lose_one)
    assert run(path, tmp_path / "results") == 1
    capsys.readouterr()
    assert main(["leaderboard", "tiny", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "b")]) == 0
    assert f"have no result (failed or not run), their rows are marked: {lost.id}" in capsys.readouterr().err
    table, summary = (tmp_path / "b.md").read_text().split("## Across tables")
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| s")}
    assert "| supervised | " in summary and "(seeds missing)" in summary  # the summary flags it too
    assert "1/2 seeds" in rows["supervised"] and "**" not in rows["supervised"]
    assert "| 2 | paper |" in rows["stl"]
    csv_rows = (tmp_path / "b.csv").read_text().splitlines()
    assert "seeds_asked" in csv_rows[0]


@pytest.mark.parametrize("overrides, expected", [
    ({"leaderboard": {"baseline": "supervisd"}}, "leaderboard.baseline: 'supervisd' is not a method of this suite"),
    ({"leaderboard": {"metrics": {"depth": ["delta9"]}}}, "leaderboard.metrics.depth: delta9 is not a metric of depth"),
])
def test_an_unknown_baseline_or_metric_is_a_validation_error(write_suite, overrides, expected):
    with pytest.raises(SuiteError, match=expected):
        load_suite(write_suite(overrides))


# ------------------------------------------------------------------------------------------- non-finite
def test_a_diverging_job_stops_with_its_task_epoch_and_step_and_writes_no_nan(write_suite, tmp_path, capsys):
    path = write_suite({"methods": ["supervised"], "train": {**FAST, "epochs": 3, "optimizer":
                                                              {"name": "sgd", "lr": 1.0e12}}})
    assert run(path, tmp_path / "results") == 1
    job = load_suite(path).jobs[0]
    error = Store(tmp_path / "results").error_line(job)
    assert re.match(r"NonFiniteLoss: the training loss of \w+ \(stage mtl\) became NaN or infinite at epoch 1, "
                    r"step \d+: the run diverged.* no checkpoint was written yet", error), error
    assert job.id in capsys.readouterr().out  # the FAILED line names the job
    folder = tmp_path / "results" / "tiny" / job.id
    assert not (folder / "result.json").exists() and not list(folder.glob("checkpoint-*"))


def test_results_and_records_are_strict_json(write_suite, tmp_path):
    path = write_suite({"methods": ["supervised"], "train": FAST})
    assert run(path, tmp_path / "results") == 0
    folder = tmp_path / "results" / "tiny" / load_suite(path).jobs[0].id
    strict(folder / "result.json")
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


# ------------------------------------------------------------------------------------ validation up front
@pytest.mark.parametrize("overrides, expected", [
    ({"dataset": {"name": "synthrooms", "height": 32, "width": 64, "train": 0}}, "dataset: train = 0: a split"),
    ({"dataset": {"name": "synthrooms", "height": 0, "width": 64}}, "dataset: height = 0: must be >= 1"),
    ({"train": {"scheduler": {"name": "step", "step_size": 0}}}, "train.scheduler: step_size = 0: must be >= 1"),
    ({"train": {"scheduler": {"name": "step", "gamma": -0.5}}}, "train.scheduler: gamma = -0.5: must lie in"),
    ({"model": {"name": "segnet", "width": 0}}, "model: width = 0.0: must be > 0"),
    ({"model": {"name": "segnet", "width": -1}}, "model: width = -1.0: must be > 0"),
    ({"methods": [{"name": "a", "weighting": {"name": "amtl", "gamma": -1, "potentials": {"seg": 1}}}]},
     "methods[0].weighting: gamma = -1.0: must be >= 0"),
    ({"seeds": [0, 1, 0]}, "seeds: listed more than once: 0"),
    ({"tasks": ["seg", "depth", "seg"]}, "tasks: listed more than once: seg"),
    ({"train": {"optimizer": {"name": "adam", "lr": 0}}}, "train.optimizer: lr = 0.0: must be > 0"),
])
def test_malformed_suites_fail_before_training_naming_the_field(write_suite, tmp_path, overrides, expected):
    with pytest.raises(SuiteError, match=r"tiny.yaml: (invalid suite\n  )?" + re.escape(expected)):
        load_suite(write_suite(overrides))


def test_duplicate_yaml_keys_a_binary_file_and_a_directory_are_refused(tmp_path, capsys):
    (tmp_path / "twice.yaml").write_text("name: a\ntasks: [seg]\nname: b\n")
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)))
    for suite, expected in [("twice.yaml", "key 'name' is given twice"), ("binary.yaml", "not a text file"),
                            (".", "is a directory, not a suite file")]:
        assert main(["run", str(tmp_path / suite), "--results", str(tmp_path / "r")]) == 2
        assert expected in capsys.readouterr().err


# -------------------------------------------------------------------------------------------- interrupts
def wait_for(path: Path, process: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert path.exists(), f"{path} never appeared"


def default_sigint() -> None:
    """A shell without job control starts background commands with SIGINT ignored, and Python keeps an ignored
    SIGINT ignored: give the child the terminal's default, as a user's Ctrl-C meets it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_while_torch_is_still_importing_ends_with_one_line(write_suite, tmp_path):
    """The first second of a command is spent importing torch: a stand-in torch that receives the Ctrl-C there
    makes the moment exact. The console script itself imports nothing heavy, so main() is already running."""
    fake = tmp_path / "slow" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(30)\n")
    script = Path(sys.executable).with_name("mtlbench")
    path = write_suite({"methods": ["supervised"], "train": FAST})
    env = {**ENV, "PYTHONPATH": f"{fake.parent}{os.pathsep}{REPO}"}
    done = subprocess.run([str(script), "run", str(path), "--results", str(tmp_path / "r")], env=env,
                          capture_output=True, text=True, timeout=60, preexec_fn=default_sigint)
    assert done.returncode == 130 and done.stderr.strip() == "interrupted (Ctrl-C)", done.stderr
    light = subprocess.run([sys.executable, "-c", "import sys, mtlbench.cli; print('torch' in sys.modules)"],
                           env=ENV, capture_output=True, text=True, timeout=60)
    assert light.stdout.strip() == "False"  # what runs before main() imports no torch


def test_a_command_run_in_process_gives_the_sigterm_handler_back(write_suite, tmp_path):
    """mtlbench called as a library (pytest, a notebook) must leave the caller's SIGTERM handler as it found it:
    once a command returned, SIGTERM is the caller's again, not mtlbench's Terminated."""
    mine = lambda signum, frame: None  # noqa: E731
    previous = signal.signal(signal.SIGTERM, mine)
    try:
        assert run(write_suite({"methods": ["supervised"], "train": FAST}), tmp_path / "r") == 0
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_inside_the_block_is_a_clean_interrupt_and_the_handler_comes_back():
    from mtlbench.interrupts import Terminated, exit_code_of, sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as stopped, sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises at the next bytecode, long before this ends
    assert exit_code_of(stopped.value) == 143 and signal.getsignal(signal.SIGTERM) is before


class SignalOnSecondWrite:
    """A checkpoint stream that sends this process SIGTERM when torch.save's C++ writer calls it the second time
    (the interrupt of the first write reaches Python; torch reports those of the later ones as a RuntimeError)."""

    def __init__(self, stream):
        self.stream, self.writes = stream, 0

    def write(self, data):
        self.writes += 1
        if self.writes == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return self.stream.write(data)

    def flush(self):
        self.stream.flush()


def test_a_sigterm_that_torch_save_turns_into_an_error_stops_the_run_and_fails_no_job(write_suite, tmp_path,
                                                                                      monkeypatch):
    """torch.save calls a file's write from C++ and reports the interrupt raised there as a RuntimeError. A SIGTERM
    landing mid-checkpoint counted the job as failed and the runner went on to the next job: a stopped parallel run
    never exited (its worker kept training). Now the run stops with 143, no job is failed, the next is not begun."""
    from mtlbench.interrupts import sigterm_as_interrupt
    from mtlbench.train import checkpoint

    save = torch.save

    def save_interrupted(state, stream):
        save(state, SignalOnSecondWrite(stream))

    with pytest.raises(RuntimeError, match="unexpected pos"):  # the conversion this guards against, as torch does it
        with open(tmp_path / "probe.pt", "wb") as stream, sigterm_as_interrupt():
            save_interrupted({"w": torch.zeros(1000)}, stream)
    monkeypatch.setattr(checkpoint.torch, "save", save_interrupted)
    path = write_suite({"methods": ["supervised"], "seeds": [0, 1], "train": FAST})
    assert run(path, tmp_path / "results") == 143
    first, second = load_suite(path).jobs
    store = Store(tmp_path / "results")
    assert store.error_line(first) == "" and not store.job_dir(second).exists()


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_stop_cleanly_and_the_run_resumes(write_suite, tmp_path, signum, code):
    path = write_suite({"methods": ["supervised"], "train": {**FAST, "epochs": 40}})
    results = tmp_path / "results"
    job = load_suite(path).jobs[0]
    process = subprocess.Popen(command(path, results, "--force"), env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    wait_for(results / "tiny" / job.id / "checkpoint-mtl.pt", process)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == code, out + err
    again = shlex.join(["mtlbench", *command(path, results)[3:]])  # as given, less --force (it would retrain)
    assert "Traceback" not in err and err.strip().endswith(f"resumes from it: run `{again}` again")
    assert (results / "tiny" / job.id / "checkpoint-mtl.pt").exists()
    assert not (results / "tiny" / job.id / CLAIM).exists()
    done = subprocess.run(command(path, results), env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = strict(results / "tiny" / job.id / "result.json")
    assert result["resumed_from_epoch"]["mtl"] >= 1 and [r["epoch"] for r in result["history"]] == list(range(1, 41))
    assert result["costs"]["step_flops"] > 0  # counted by the first process (its checkpoint keeps it) or this one


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_stop_with_a_terminated_run(write_suite, tmp_path):
    path = write_suite({"methods": ["supervised"], "seeds": [0, 1], "train": {**FAST, "epochs": 40}})
    results = tmp_path / "results"
    process = subprocess.Popen(command(path, results, "--workers", "2"), env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    first = load_suite(path).jobs[0]
    wait_for(results / "tiny" / first.id / "checkpoint-mtl.pt", process)
    workers = [pid for pid in children_of(process.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert workers
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    time.sleep(1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


def test_a_job_that_deletes_its_own_folder_fails_alone(write_suite, tmp_path, monkeypatch, capsys):
    import shutil

    path = write_suite({"methods": ["stl", "supervised"], "train": FAST})
    original = Train.run

    def vandal(self, config, job_dir, hooks, test):
        if config["method"]["networks"] == "per_task":
            shutil.rmtree(job_dir)
            raise RuntimeError("folder gone")
        return original(self, config, job_dir, hooks, test)

    monkeypatch.setattr(Train, "run", vandal)
    assert run(path, tmp_path / "results") == 1
    stl, supervised = load_suite(path).jobs
    store = Store(tmp_path / "results")
    assert store.is_done(supervised) and store.error_line(stl) == "RuntimeError: folder gone"


# --------------------------------------------------------------------------------------------------- W&B
def test_a_resumed_job_leaves_one_offline_run_with_every_epoch(write_suite, tmp_path):
    from test_wandb import inspect

    path = write_suite({"methods": ["supervised"], "train": {**FAST, "epochs": 30}})
    results = tmp_path / "results"
    job = load_suite(path).jobs[0]
    offline = [sys.executable, "-m", "mtlbench.cli", "run", str(path), "--results", str(results), "--wandb", "offline"]
    process = subprocess.Popen(offline, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    folder = results / "tiny" / job.id
    wait_for(folder / "checkpoint-mtl.pt", process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = subprocess.run(offline, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    runs = list(folder.glob("wandb/offline-run-*"))
    assert len(runs) == 1
    records = [json.loads(line) for line in inspect(runs[0]).splitlines()]
    epochs = [r["history"]["item"]["epoch"] for r in records if r["type"] == "history"]
    assert epochs == list(range(1, 31)), epochs


def test_an_epoch_checkpointed_but_not_yet_recorded_is_recorded_when_the_job_resumes(write_suite, tmp_path,
                                                                                      monkeypatch):
    """The moment the flaky kill above could hit: epoch 2's checkpoint is saved, then the attempt dies before its
    record reaches metrics.jsonl or the W&B run. The resumed attempt trains epoch 3 only, yet records all three."""
    from test_wandb import inspect

    path = write_suite({"methods": ["supervised"], "train": {**FAST, "epochs": 3}})
    results = tmp_path / "results"
    original = Store.write_history

    def dies_at_epoch_2(self, job, history):
        if history[-1]["epoch"] == 2:
            raise RuntimeError("killed between the checkpoint and its record")
        original(self, job, history)

    monkeypatch.setattr(Store, "write_history", dies_at_epoch_2)
    assert main(["run", str(path), "--results", str(results), "--wandb", "offline"]) == 1
    monkeypatch.setattr(Store, "write_history", original)
    assert main(["run", str(path), "--results", str(results), "--wandb", "offline"]) == 0
    folder = results / "tiny" / load_suite(path).jobs[0].id
    assert read_json(folder / "result.json")["resumed_from_epoch"] == {"mtl": 2}
    assert [json.loads(line)["epoch"] for line in (folder / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    (run_dir,) = folder.glob("wandb/offline-run-*")
    records = [json.loads(line) for line in inspect(run_dir).splitlines()]
    assert [r["history"]["item"]["epoch"] for r in records if r["type"] == "history"] == [1, 2, 3]


# ------------------------------------------------------------------------------------------------- chaos
def test_a_suite_killed_at_random_moments_finishes_as_an_uninterrupted_one(write_suite, tmp_path):
    """SIGKILL at 6 seeded random moments, then a last run to the end: the results equal an uninterrupted
    run's, bit for bit, and no job ever ran twice to the end."""
    path = write_suite({"methods": ["stl", "supervised", "amtl"], "tasks": ["seg", "normal"],
                        "train": {**FAST, "epochs": 4}})
    reference, chaotic = tmp_path / "reference", tmp_path / "chaotic"
    start = time.monotonic()
    assert subprocess.run(command(path, reference), env=ENV, capture_output=True, timeout=600).returncode == 0
    duration = time.monotonic() - start
    moments = random.Random(20261130)
    for _ in range(6):
        process = subprocess.Popen(command(path, chaotic), env=ENV, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(moments.uniform(0.3, 0.9) * duration)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert subprocess.run(command(path, chaotic), env=ENV, capture_output=True, timeout=600).returncode == 0
    for job in load_suite(path).jobs:
        want = read_json(reference / "tiny" / job.id / "result.json")
        got = read_json(chaotic / "tiny" / job.id / "result.json")
        assert (got["test"], got["val"], got.get("potentials")) == (want["test"], want["val"], want.get("potentials"))
        assert [r["epoch"] for r in got["history"]] == [r["epoch"] for r in want["history"]]
        assert not list((chaotic / "tiny" / job.id).glob("claim.json*"))


def test_a_claim_left_on_a_finished_job_by_a_killed_runner_is_removed_by_the_next_run(write_suite, tmp_path):
    """The kill above can land between a job's result.json and the release of its claim."""
    path = write_suite({"methods": ["supervised"], "train": FAST})
    results = tmp_path / "results"
    run(path, results)
    (job,) = load_suite(path).jobs
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (results / "tiny" / job.id / CLAIM).write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid,
                                                               "started": "2026-01-01T00:00:00+00:00", "token": "x"}))
    run(path, results)
    assert not list((results / "tiny" / job.id).glob("claim.json*"))


# ------------------------------------------------------------------------------ what reproduces where
def trained_metrics(path, results, env) -> dict:
    done = subprocess.run(command(path, results), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (result,) = results.glob("tiny/*/result.json")
    record = json.loads(result.read_text())
    timings = ("seconds", "images_per_second", "eval_seconds", "data_wait_seconds")
    return {"test": record["test"], "device": record["device"],
            "history": [{k: v for k, v in epoch.items() if k not in timings} for epoch in record["history"]]}


def has_avx2() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.exists() and " avx2" in cpuinfo.read_text()


@pytest.mark.skipif(not has_avx2(), reason="portable kernels are defined for x86-64 CPUs with AVX2")
@pytest.mark.parametrize("kernels", ["portable", "strict"])
def test_portable_kernels_give_the_same_numbers_whatever_instruction_set_the_cpu_has(write_suite, tmp_path, kernels):
    """On this job, native kernels differ between an AVX-512 CPU and the AVX2-only one simulated here."""
    path = write_suite({"methods": ["supervised"], "train": {**FAST, "epochs": 2}})
    chosen = {**ENV, "OMP_NUM_THREADS": "2", "MTLBENCH_CPU_KERNELS": kernels}
    here = trained_metrics(path, tmp_path / "here", chosen)
    # an AVX2-only CPU, as far as oneDNN, MKL and PyTorch's vectorised kernels can tell
    older = {**chosen, "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    assert trained_metrics(path, tmp_path / "older", older) == here
    assert here["device"].endswith(f"2 threads, {kernels} kernels")


def test_the_cpu_kernels_are_set_where_a_job_starts_and_a_wrong_choice_is_one_line(monkeypatch):
    from mtlbench.train.trainer import resolve_device

    for variable in ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MTLBENCH_CPU_KERNELS", "native")
    resolve_device("cpu")
    assert torch.backends.mkldnn.enabled and "MKL_CBWR" not in os.environ and "ONEDNN_MAX_CPU_ISA" not in os.environ
    monkeypatch.setenv("MTLBENCH_CPU_KERNELS", "strict")
    resolve_device("cpu")
    assert not torch.backends.mkldnn.enabled and os.environ["MKL_CBWR"] == "AVX2"
    assert "ONEDNN_MAX_CPU_ISA" not in os.environ
    monkeypatch.delenv("MTLBENCH_CPU_KERNELS")
    resolve_device("cpu")
    assert torch.backends.mkldnn.enabled and os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    done = subprocess.run([sys.executable, "-m", "mtlbench.cli", "list"], capture_output=True, text=True, timeout=120,
                          env={**ENV, "MTLBENCH_CPU_KERNELS": "fastest"})
    assert done.returncode == 2 and done.stderr.startswith("error: environment variable MTLBENCH_CPU_KERNELS=")
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_parallel_run_stopped_by_sigterm_exits_though_jobs_were_still_queued(write_suite, tmp_path):
    """Jobs no worker took sit in the queue's pipe; a run stopped before they were taken must still exit (it hung
    at the interpreter's exit, flushing them into a pipe nobody reads)."""
    suite = write_suite({"methods": ["supervised"], "seeds": list(range(300)),
                         "train": {"epochs": 50, "batch_size": 8, "eval_batch_size": 8, "device": "cpu"}})
    run = subprocess.Popen(command(suite, tmp_path / "results", "--workers", "2"), env=ENV,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "results" / "tiny").glob("*/metrics.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.5)  # the workers train: the rest of the jobs wait in the queue
    run.send_signal(signal.SIGTERM)
    try:
        output, _ = run.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        run.kill()
        pytest.fail("the stopped run did not exit")
    assert run.returncode != 0 and "interrupted" in output
