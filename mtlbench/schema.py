"""The suite schema (pydantic only, no torch): ``SuiteFile``, the fields every suite has, and its sections, the one
place their defaults live; with ``resolved``, the parse every leaderboard reader goes through so that none repeats a
default. Tracks add their own sections (``Track.section``); ``config`` validates a suite against the whole and
expands it into jobs."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator


class Strict(BaseModel):
    """Unknown keys are errors: a misspelt setting must not be ignored."""

    model_config = ConfigDict(extra="forbid")


class PublishedSection(Strict):
    """Numbers a paper published for this suite's setting, shown beside ours (``leaderboard.published``)."""

    source: str = Field(description="the paper, as docs/papers.md cites it, e.g. 'Kim et al. 2023'")
    table: str = Field(description="where in the paper, e.g. 'Table 1'")
    dataset: str | None = Field(None, description="the table it belongs to (default: every dataset)")
    scenario: str | None = Field(None, description="the scenario label it belongs to (default: every scenario)")
    note: str = Field("", description="how the paper's setting differs from the suite's, if it does")
    rows: dict[str, dict[str, float]] = Field(description="method -> {TASK/METRIC, delta_mtl or acc_mtl: value}")
    baseline: str | None = Field(None, description="the method the paper's delta_mtl is against, as the suite names "
                                                   "it (a delta_mtl beside ours is compared only if it matches)")
    metrics: dict[str, list[str]] | Literal["unstated"] | None = Field(
        None, description="per task, the metrics the paper's delta_mtl averages (compared with leaderboard.metrics); "
                          "unstated: the paper does not say, and its delta_mtl is not set against ours")
    notes: dict[str, str] = Field(default_factory=dict, description="per row: how the paper's setting of that row "
                                                                    "differs from the suite's")


LEADERBOARD_COLUMNS = ("metrics", "delta", "acc", "time", "memory", "flops", "seeds", "params")


class LeaderboardSection(Strict):
    baseline: str = "supervised"
    metrics: dict[str, list[str]] = Field(default_factory=dict,
                                          description="metrics per task entering ΔMTL (default: the primary)")
    select: Literal["last", "best_val"] = Field(
        "last", description="the epoch reported: the last, or the best on validation (needs train.test_every_epoch)")
    select_by: str = Field("delta_mtl", description="best_val's criterion: delta_mtl (validation ΔMTL vs the "
                                                    "baseline) or TASK/METRIC")
    acc_mtl: bool = Field(False, description="a column of Acc_MTL (Yun and Cho 2023 Eq. 8) over the metrics "
                                             "entering ΔMTL, beside ΔMTL")
    published: list[PublishedSection] = Field(default_factory=list,
                                              description="papers' numbers shown beside ours")
    columns: list[Literal[LEADERBOARD_COLUMNS]] = Field(
        default_factory=lambda: list(LEADERBOARD_COLUMNS),
        description="the column groups shown, in their fixed order: metrics, delta (ΔMTL and p), acc (with acc_mtl), "
                    "time and memory (ratios to the baseline), flops (GFLOPs per step), seeds, params")

    @model_validator(mode="after")
    def published_once(self) -> "LeaderboardSection":
        keys = [(p.dataset, p.scenario) for p in self.published]
        twice = sorted({str(k) for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"published: more than one entry for (dataset, scenario) {', '.join(twice)}")
        return self


class WandbSection(Strict):
    project: str = "mtlbench"
    entity: str | None = None


def resolved(summary: dict[str, Any], select: str | None = None,
             columns: list[str] | None = None) -> dict[str, Any]:
    """``summary`` (a suite.json, or what a W&B project gave back) with its leaderboard section validated and
    every default filled in, ``select`` overriding the epoch reported and ``columns`` the columns shown: what every
    leaderboard reader indexes."""
    settings = LeaderboardSection.model_validate(summary.get("leaderboard") or {})  # before 0.2: no section
    if select is not None:
        settings = settings.model_copy(update={"select": select})
    if columns is not None:
        settings = LeaderboardSection.model_validate({**settings.model_dump(), "columns": columns})
    return {**summary, "leaderboard": settings.model_dump()}


class AugmentSection(Strict):
    scale_crop: bool = True
    flip: bool = True
    align_corners: bool = Field(True, description="resize image and normals as the authors' loaders do")
    photometric_ops: int = Field(0, ge=0, description="JTR's RandAugment: operations per image (its script: 2)")
    photometric_magnitude: int = Field(6, ge=1, le=31, description="magnitude bins sampled from (its script: 6)")


class TrainSection(Strict):
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 8
    eval_batch_size: PositiveInt = 32
    optimizer: str | dict[str, Any] = "adam"
    scheduler: str | dict[str, Any] = "step"
    augment: AugmentSection = AugmentSection()
    device: str = Field("auto", description="auto (CUDA when there is one, else the CPU), cpu, cuda, cuda:N, mps")
    precision: Literal["auto", "fp32", "tf32", "bf16"] = Field(
        "auto", description="fp32 / tf32 / bf16; auto: bf16 on CUDA, fp32 elsewhere")
    test_every_epoch: bool = Field(False, description="test after every epoch too (history), as leaderboard.select: "
                                                      "best_val needs; trains nothing differently")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="label smoothing of the segmentation "
                                                                    "cross-entropy (Yun and Cho 2023's code: 0.1)")
    observe: list[str] = Field(default_factory=list, description="step observers, by name (mtlbench list): what "
                                                                  "they measure goes to W&B and result.json; they "
                                                                  "change no step")
    devices: PositiveInt = Field(1, description="devices (processes) one job trains on, data-parallel: each takes "
                                                "every N-th image of a batch (docs/cluster.md)")

    @field_validator("device")
    @classmethod
    def known_device(cls, device: str) -> str:
        """A device torch can name (whether this machine has it is checked when a local run starts)."""
        from .train.trainer import check_device

        return check_device(device)


class TuneSection(Strict):
    """``mtlbench tune``: one Optuna study per (dataset, scenario, method), scored on the validation split."""

    trials: PositiveInt = Field(20, description="finished (complete or pruned) trials per study, every method alike")
    seeds: list[int] | None = Field(None, description="training seeds of every trial (default: the suite's first)")
    objective: str = Field("delta_mtl", description="delta_mtl (validation ΔMTL vs baseline), acc_mtl (Yun and Cho "
                                                    "2023 Eq. 8 over leaderboard.metrics) or TASK/METRIC")
    baseline: str | None = Field(None, description="ΔMTL's reference method (default: leaderboard.baseline)")
    pruner: str | dict[str, Any] = "median"
    sampler_seed: int = 0
    startup_trials: PositiveInt = Field(10, description="TPE's random trials before it models the results")
    space: dict[str, dict[str, Any] | None] = Field(
        default_factory=dict, description="per parameter path: null (not tuned), {low, high} or {values: [...]}")


class LrGridSection(Strict):
    """Yun and Cho 2023 Sec. 4.1's protocol: every method (the baseline too) trained with every seed at each learning
    rate; per rate, the runs' mean score without the ``trim`` largest and ``trim`` smallest; the rate with the best
    mean is the one the leaderboard reports, over those runs (the paper: 5 rates x 10 runs, trim 1, Acc_MTL)."""

    rates: list[float] = Field(min_length=1, description="the learning rates train.optimizer.lr takes")
    trim: int = Field(1, ge=0, description="runs left out at each end of each rate's scores")
    score: str = Field("acc_mtl", description="what trims and picks the rate: acc_mtl (over leaderboard.metrics) or "
                                              "TASK/METRIC")
    split: Literal["val", "test"] = Field("val", description="the split the score is read on (the paper: test, "
                                                             "having no validation split)")

    @field_validator("rates")
    @classmethod
    def positive_and_distinct(cls, rates: list[float]) -> list[float]:
        if any(rate <= 0 for rate in rates) or len(set(rates)) != len(rates):
            raise ValueError("give distinct positive learning rates")
        return rates


class SweepSection(Strict):
    """A label-efficiency curve (Sun et al. 2023 Fig. 2; Nishi et al. 2024 Tables 4-5): every listed scenario
    trained at each value of one of its parameters, and the leaderboard's ``-sweep`` figure drawing each method's
    ΔMTL and task metrics against it."""

    parameter: str = Field(description="a parameter of every listed scenario, e.g. unlabeled (the share of training "
                                       "images without any label)")
    values: list[float] = Field(min_length=2, description="the values it takes, in the order drawn")

    @field_validator("values")
    @classmethod
    def distinct(cls, values: list[float]) -> list[float]:
        if len(set(values)) != len(values):
            raise ValueError("give distinct values")
        return values


class SuiteFile(Strict):
    """The fields every suite has; each registered track with a section adds it (``suite_schema``)."""

    name: str | None = None
    description: str = ""
    dataset: str | dict[str, Any] | None = None
    datasets: list[str | dict[str, Any]] = Field(default_factory=list)
    tasks: list[str]
    scenarios: list[str | dict[str, Any]] = Field(default_factory=list)
    mask_seed: int = Field(0, ge=0, description="seeds the label masks (never the training seed)")
    methods: list[str | dict[str, Any]] = Field(default_factory=list)
    seeds: list[int] = [0]
    model: str | dict[str, Any] = "segnet"
    train: TrainSection = TrainSection()
    leaderboard: LeaderboardSection = LeaderboardSection()
    tune: TuneSection = TuneSection()
    wandb: WandbSection = WandbSection()
    lr_grid: LrGridSection | None = Field(None, description="train every method at several learning rates and report "
                                                            "each at its best (Yun and Cho 2023 Sec. 4.1)")
    sweep: SweepSection | None = Field(None, description="train every scenario at several values of one of its "
                                                        "parameters and draw the curves (label efficiency)")
    executor: str | dict[str, Any] = Field("local", description="where jobs run: local, or {name: slurm, ...}")

    @model_validator(mode="after")
    def best_val_is_tested(self) -> "SuiteFile":
        if self.leaderboard.select == "best_val" and not self.train.test_every_epoch:
            raise ValueError("leaderboard.select: best_val reports the test metrics of the epoch chosen on "
                             "validation, which only jobs tested after every epoch have: set "
                             "train.test_every_epoch: true (or leaderboard.select: last)")
        return self

    @field_validator("seeds", "tasks")
    @classmethod
    def listed_once(cls, values: list[Any]) -> list[Any]:
        twice = sorted({str(v) for v in values if values.count(v) > 1})
        if twice:
            raise ValueError(f"listed more than once: {', '.join(twice)} (each would train the same jobs again)")
        return values
