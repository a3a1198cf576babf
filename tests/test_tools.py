"""The measuring tools under tools/ that the docs quote figures from."""
import importlib.util

from conftest import REPO


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(resumed_from: int, wall: float = 10.0) -> dict:
    return {"job_id": "j", "method": "m", "resumed_from_epoch": {"mtl": resumed_from}, "wall_seconds": wall,
            "data_seconds": 1.0, "train_seconds": 6.0, "eval_seconds": 2.0}


def test_time_profile_splits_a_job_into_its_phases_and_the_rest():
    assert load_tool("time_profile").job_times(timed(0)) == [1, 0, 10.0, 1.0, 6.0, 2.0, 1.0]


def test_time_profile_counts_a_resumed_job_without_timing_it():
    """A resumed job's wall time covers its last process only, while its training sums all of them: timing it
    would give a negative rest, as the 8-seed partial suite's two resumed JTR jobs did."""
    assert load_tool("time_profile").job_times(timed(5, wall=3.0)) == [0, 1, 0.0, 0.0, 0.0, 0.0, 0.0]
