"""Job ids are a contract: users' stored results hang on them. Every shipped suite expands to exactly the ids
(and order) pinned in tests/data/job_ids.json: first written at commit 751bd3b, before the job graph, which kept
every one; rewritten only by changes of training, whose closing notes list the ids they changed."""
import hashlib
import json
from pathlib import Path

import pytest

from mtlbench.config import load_suite
from mtlbench.ids import job_id
from conftest import REPO

PINNED = json.loads((Path(__file__).parent / "data" / "job_ids.json").read_text())


def test_every_shipped_suite_is_pinned():
    assert sorted(PINNED) == sorted(p.stem for p in (REPO / "suites").glob("*.yaml"))


@pytest.mark.parametrize("suite", sorted(PINNED))
def test_a_shipped_suite_expands_to_its_pinned_job_ids(suite, without_dataset_files, monkeypatch):
    monkeypatch.chdir(REPO)  # suites name dataset roots relative to the repository
    assert [job.id for job in load_suite(REPO / "suites" / f"{suite}.yaml").jobs] == PINNED[suite]


def test_a_renamed_config_key_hashes_as_first_spelt():
    method = {"name": "sta", "networks": "shared", "supervision": {"name": "sta"}}
    first = {"method": {**{k: v for k, v in method.items() if k != "supervision"}, "allocation": {"name": "sta"}},
             "allocation": {"budget": 10}, "seed": 0}
    expected = hashlib.sha256(json.dumps(first, sort_keys=True).encode()).hexdigest()[:12]
    assert job_id({"method": method, "purchase": {"budget": 10}, "seed": 0}) == expected


def test_a_probe_tolerance_of_0_hashes_the_budget_suite_as_before_it_came(without_dataset_files, monkeypatch,
                                                                           tmp_path):
    """``budget.probe.tolerance`` changed TABA's estimates (new ids, listed in docs/job-id-changes-0.2.json);
    set to 0, the behaviour before it, every job has its earlier id again."""
    import yaml

    monkeypatch.chdir(REPO)
    changes = json.loads((REPO / "docs" / "job-id-changes-0.2.json").read_text())["suites"]["synthrooms_budget"]
    before = {moved["new"]: old for old, moved in changes.items()}
    suite = yaml.safe_load((REPO / "suites" / "synthrooms_budget.yaml").read_text())
    suite["seeds"] = [0, 1, 2]  # the repeats of 0.2, whose ids the change list records

    def ids(tolerance: float | None) -> list[str]:
        if tolerance is not None:
            suite["budget"]["probe"]["tolerance"] = tolerance
        (tmp_path / "synthrooms_budget.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
        return [job.id for job in load_suite(tmp_path / "synthrooms_budget.yaml").jobs]

    now = ids(None)
    assert set(now) <= set(PINNED["synthrooms_budget"])
    assert ids(0) == [before.get(i, i) for i in now] and set(ids(0)) & set(before) == set()


def test_nyu_amtl_with_its_earlier_weights_hashes_as_before(without_dataset_files, monkeypatch):
    """0.3 changed nyu_amtl's ResNet-50 weights (IMAGENET1K_V2, as the authors' code) and added a learning-rate grid
    and rows; its earlier jobs, listed in docs/job-id-changes-0.3.json, are its jobs at the old weights and lr 1e-4."""
    monkeypatch.chdir(REPO)
    changes = json.loads((REPO / "docs" / "job-id-changes-0.3.json").read_text())["suites"]["nyu_amtl"]
    old = load_suite(REPO / "suites" / "nyu_amtl.yaml", ["model.weights=data/resnet50-0676ba61.pth", "lr_grid=null",
                                                         "methods=[stl, supervised, rlw, dwa, gls, mgda, pcgrad, cagrad, "
                                                         "gradnorm, imtl_g, dtp, amtl]", "leaderboard.published=[]"])
    assert [job.id for job in old.jobs] == list(changes)
    now = {job.id for job in load_suite(REPO / "suites" / "nyu_amtl.yaml").jobs}
    assert {moved["new"] for moved in changes.values()} <= now


def test_kd_mtl_at_one_level_hashes_as_before(monkeypatch):
    """KD-MTL distils the authors' two levels since issue 37's second part; ``levels: 1`` is the earlier training
    and keeps the ids listed in docs/job-id-changes-0.3.json (reason kd_mtl_levels)."""
    monkeypatch.chdir(REPO)
    changes = json.loads((REPO / "docs" / "job-id-changes-0.3.json").read_text())["suites"]["synthrooms_teachers"]
    path = REPO / "suites" / "synthrooms_teachers.yaml"
    one = load_suite(path, ["methods=[stl, supervised, mtpsl, must, noisy_student, "
                            "{name: kd_mtl, regularizer: {name: kd_mtl, levels: 1}}]"])
    two = [job for job in load_suite(path).jobs if job.config["method"]["name"] != "kd_mtl_encoder"]
    back = {entry["new"]: old for old, entry in changes.items()}
    assert [job.id for job in one.jobs] == [back.get(job.id, job.id) for job in two]
    assert {job.config["method"]["name"] for job in two if job.id in back} == {"kd_mtl"} and len(back) == 16


def test_kd_mtl_with_untrained_decoder_adaptors_hashes_as_before_the_fix(monkeypatch):
    """The two-level jobs first trained left the decoder's adaptors outside the optimiser; ``decoded_adaptor_lr: 0``
    trains so and keeps their ids (docs/job-id-changes-0.3.json's ``untrained_decoded_adaptors``); every other job of
    the suite keeps its id."""
    monkeypatch.chdir(REPO)
    changes = json.loads((REPO / "docs" / "job-id-changes-0.3.json").read_text())["suites"]["synthrooms_teachers"]
    fixed_to_before = {entry["new"]: entry["untrained_decoded_adaptors"] for entry in changes.values()}
    path = REPO / "suites" / "synthrooms_teachers.yaml"
    now = load_suite(path).jobs
    zero = load_suite(path, ["methods=[stl, supervised, mtpsl, must, noisy_student, {name: kd_mtl, regularizer: "
                             "{name: kd_mtl, decoded_adaptor_lr: 0}}, {name: kd_mtl_encoder, regularizer: "
                             "{name: kd_mtl, levels: 1}}]"]).jobs
    assert [job.id for job in zero] == [fixed_to_before.get(job.id, job.id) for job in now]
    assert len(set(fixed_to_before.values()) & {job.id for job in zero}) == 16


def test_synthrooms_grouping_s_ninth_seed_kept_the_ids_of_its_first_eight(without_dataset_files, monkeypatch):
    """Seed 8 came so that Holm over Table 4's 7 comparisons can decide (sener joined the rows); a suite's ids do
    not depend on how many seeds it lists, so the 664 jobs of seeds 0-7, results already stored, kept theirs: the
    digest is of the eight-seed suite's pinned ids before the ninth came (tests/data/job_ids.json at c12c5a9)."""
    monkeypatch.chdir(REPO)
    path = REPO / "suites" / "synthrooms_grouping.yaml"
    eight = [job.id for job in load_suite(path, ["seeds=[0,1,2,3,4,5,6,7]"]).jobs]
    nine = load_suite(path).jobs
    assert len(eight) == 664 and eight == [job.id for job in nine if job.config["seed"] != 8]
    assert hashlib.sha256(",".join(eight).encode()).hexdigest() == (
        "b433ca50baa58fef9dada8a05deff06b73b783d809ae836161e6c8d7f2562bc8")
