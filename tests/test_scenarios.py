"""Label scenarios: the properties each promises, determinism in the mask seed, the canonical files."""
import numpy as np
import pytest

from mtlbench.data import label_mask
from mtlbench.data.scenarios import ScenarioError
from conftest import REFERENCE

TASKS = ["seg", "depth", "normal", "edge", "keypoint", "shading", "cls"]


def mask(name, n=700, tasks=TASKS, seed=0, **params):
    return label_mask({"name": name, **params}, n, tasks, seed)


def test_full_labels_everything():
    assert mask("full").min() == 1


def test_onelabel_has_exactly_one_label_per_image_balanced_over_tasks():
    m = mask("onelabel", n=703)
    assert (m.sum(1) == 1).all()
    counts = m.sum(0)
    assert counts.max() - counts.min() <= 1


def test_randomlabels_gives_1_to_t_minus_1_labels_uniformly():
    m = mask("randomlabels", n=6000)
    sizes = m.sum(1)
    assert sizes.min() == 1 and sizes.max() == len(TASKS) - 1
    frequencies = np.bincount(sizes.astype(int), minlength=len(TASKS))[1:len(TASKS)] / len(sizes)
    assert np.allclose(frequencies, 1 / (len(TASKS) - 1), atol=0.02)
    assert np.allclose(m.mean(0), m.mean(), atol=0.03)  # no task favoured


def test_halflabels_gives_3_or_4_of_7():
    sizes = mask("halflabels", n=4000).sum(1)
    assert set(np.unique(sizes)) == {3, 4}
    assert abs((sizes == 3).mean() - 0.5) < 0.03


def test_unlabeled_fraction_blanks_images_and_keeps_the_others_masks():
    base = mask("randomlabels", n=1000, tasks=TASKS[:3])
    for fraction in (0.3, 0.5, 0.7):
        m = mask("randomlabels", n=1000, tasks=TASKS[:3], unlabeled=fraction)
        blank = m.sum(1) == 0
        assert blank.sum() == round(fraction * 1000)
        assert np.array_equal(m[~blank], base[~blank])
    inner = mask("onelabel", n=1000, tasks=TASKS[:3], unlabeled=0.3).sum(1) == 0
    outer = mask("onelabel", n=1000, tasks=TASKS[:3], unlabeled=0.5).sum(1) == 0
    assert (outer[inner]).all()  # the 30% unlabelled images are among the 50%


def test_mask_depends_on_mask_seed_only():
    assert np.array_equal(mask("randomlabels", seed=3), mask("randomlabels", seed=3))
    assert not np.array_equal(mask("randomlabels", seed=3), mask("randomlabels", seed=4))


def test_randomlabels_needs_two_tasks():
    with pytest.raises(ScenarioError, match="at least 2 tasks"):
        mask("randomlabels", tasks=["seg"])


def test_canonical_mtpsl_masks_are_read_from_the_legacy_torch_files():
    onelabel = mask("mask_file", n=795, tasks=["seg", "depth", "normal"],
                    path=str(REFERENCE / "partial_label_masks/nyuv2/onelabel.pth"))
    assert (onelabel.sum(1) == 1).all() and onelabel.sum(0).tolist() == [265, 265, 265]
    random = mask("mask_file", n=795, tasks=["depth", "seg"],
                  path=str(REFERENCE / "partial_label_masks/nyuv2/randomlabels.pth"))
    assert random.shape == (795, 2)


@pytest.mark.parametrize("dataset, name, tasks", [("nyuv2", "onelabel", ["seg", "depth", "normal"]),
                                                 ("nyuv2", "randomlabels", ["seg", "depth", "normal"]),
                                                 ("cityscapes", "onelabel", ["seg", "depth"])])
def test_bundled_canonical_masks_equal_the_published_files(dataset, name, tasks):
    published = mask("mask_file", n={"nyuv2": 795, "cityscapes": 2975}[dataset], tasks=tasks, columns=tasks,
                     path=str(REFERENCE / f"partial_label_masks/{dataset}/{name}.pth"))
    bundled = mask("canonical", n=len(published), tasks=tasks, dataset=dataset, labels=name)
    assert np.array_equal(bundled, published)
    assert np.array_equal(mask("canonical", n=len(published), tasks=tasks[::-1], dataset=dataset, labels=name),
                          published[:, ::-1])  # columns follow the suite's task order


def test_canonical_refuses_unpublished_masks_and_a_held_out_train_split():
    with pytest.raises(ScenarioError, match="no published mask cityscapes/randomlabels"):
        mask("canonical", n=2975, tasks=["seg", "depth"], dataset="cityscapes", labels="randomlabels")
    with pytest.raises(ScenarioError, match="795 rows .* 700 images; set the dataset's val to 0"):
        mask("canonical", n=700, tasks=["seg"], dataset="nyuv2", labels="onelabel")


def test_mask_file_of_the_wrong_size_names_the_file_and_shapes():
    path = str(REFERENCE / "partial_label_masks/nyuv2/onelabel.pth")
    with pytest.raises(ScenarioError, match=r"onelabel.pth: mask has shape \(795, 3\), expected \(100, 3\)"):
        mask("mask_file", n=100, tasks=["seg", "depth", "normal"], path=path)


def test_extended_appends_a_pool_labelled_for_one_task():
    from mtlbench.data import scenario
    plan = scenario({"name": "extended", "base": "onelabel", "task": "depth", "per_batch": 4}).plan(
        30, ["seg", "depth", "normal"], 0, n_pool=50)
    assert plan.mask.shape == (80, 3)
    assert (plan.mask[:30].sum(1) == 1).all()
    assert (plan.mask[30:] == [0, 1, 0]).all()
    assert plan.appended.tolist() == list(range(30, 80)) and plan.per_batch == 4


def batches_of(plan, batch_size=8, seed=0):
    import torch
    from mtlbench.train.trainer import Stage

    stage = Stage("mtl", {}, type("S", (), {"__len__": lambda self: len(plan.mask)})(),
                  torch.from_numpy(plan.mask), torch.from_numpy(plan.appended), plan.per_batch, plan.per_task)
    return [index for index, _ in stage.batches(batch_size, torch.Generator().manual_seed(seed))]


def test_appended_batching_sees_every_regular_image_once_and_k_appended_per_batch():
    from mtlbench.data import scenario
    plan = scenario({"name": "extended", "per_batch": 4}).plan(30, ["seg", "depth", "normal"], 0, n_pool=6)
    batches = batches_of(plan)
    regular = np.concatenate([b[b < 30].numpy() for b in batches])
    assert sorted(regular.tolist()) == list(range(30))
    assert all(len(b[b >= 30]) == 4 for b in batches)
    appended = np.concatenate([b[b >= 30].numpy() for b in batches])
    assert len(appended) == 16 and set(appended.tolist()) == set(range(30, 36))  # the small pool is over-sampled


def test_unlabeled_per_batch_appends_unlabelled_images_to_batches_of_labelled_ones():
    from mtlbench.data import scenario
    plan = scenario({"name": "randomlabels", "unlabeled": 0.5, "unlabeled_per_batch": 1}).plan(40, TASKS[:3], 0)
    unlabelled = set(np.flatnonzero(plan.mask.sum(1) == 0).tolist())
    batches = batches_of(plan)
    assert len(batches) == 3  # 20 labelled images in batches of 8
    for b in batches:
        assert sum(int(i) in unlabelled for i in b) == 1
    labelled = sorted(int(i) for b in batches for i in b if int(i) not in unlabelled)
    assert labelled == sorted(set(range(40)) - unlabelled)
