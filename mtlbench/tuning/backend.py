"""Optuna glue: storages by URL, and the sampler (imported only by ``mtlbench tune``).

Storages: an SQLite file (default, ``sqlite:///PATH``) or any SQLAlchemy URL (``postgresql://...`` for many
machines) is Optuna's RDBStorage, with a heartbeat so that a trial whose process died is failed after two
missed beats and re-queued with the same parameters; ``journal:PATH`` is Optuna's journal file on a shared
filesystem (no heartbeat there: ``mtlbench tune --reclaim`` re-queues trials left running by dead processes).
"""
from __future__ import annotations

import warnings
from typing import Any

import optuna

from ..train.trainer import derive_seed

HEARTBEAT_SECONDS = 60
RETRIES = 3  # re-queues of a trial whose process died, before it counts as failed for good
SCHEMES = ("sqlite:///", "postgresql://", "postgresql+", "mysql://", "mysql+", "journal:")


def open_storage(url: str) -> optuna.storages.BaseStorage:
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    if not url.startswith(SCHEMES):
        raise ValueError(f"--storage {url!r}: expected sqlite:///FILE.db, journal:FILE (a shared filesystem) or a "
                         f"database URL such as postgresql://USER:PASSWORD@HOST/DB")
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings():  # the heartbeat is marked experimental; it is what makes killed trials retry
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(RETRIES)
        return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_SECONDS,
                                          heartbeat_stale_trial_callback=retry)


def redacted(url: str) -> str:
    """The URL without its password, for files and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    return f"{scheme}://{credentials.split(':')[0]}:***@{host}"


class PaperFirstTPE(optuna.samplers.BaseSampler):
    """Trial 0 takes the suite's (paper's) values; every later trial samples with Optuna's TPE whose random
    state is derived from (seed, trial number, parameter). Processes sharing a study therefore never draw the
    same random start-up parameters, and a study run by one process is reproducible. TPE's defaults otherwise
    (independent sampling, ``startup_trials`` random trials first)."""

    def __init__(self, first: dict[str, Any], seed: int, startup_trials: int) -> None:
        self.first, self.seed, self.startup_trials = first, seed, startup_trials

    def infer_relative_search_space(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict:
        return {}

    def sample_relative(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: dict) -> dict:
        return {}

    def sample_independent(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, param_name: str,
                           param_distribution: optuna.distributions.BaseDistribution) -> Any:
        if trial.number == 0:
            return self.first[param_name]
        tpe = optuna.samplers.TPESampler(n_startup_trials=self.startup_trials,
                                         seed=derive_seed(self.seed, trial.number, param_name))
        return tpe.sample_independent(study, trial, param_name, param_distribution)
