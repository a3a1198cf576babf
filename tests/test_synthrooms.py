"""synthrooms: labels are exact and mutually consistent, generation is deterministic and cached."""
import numpy as np
import torch
import torch.nn.functional as F

from mtlbench.data.synthrooms import BOX, CEILING, CLASSES, FLOOR, WALL, SynthRooms, camera_rays, focal_length


def small(**kw) -> SynthRooms:
    return SynthRooms(**{"height": 64, "width": 96, "train": 12, "val": 4, "test": 4, **kw})


def normals_from_depth(depth: torch.Tensor, width: int) -> torch.Tensor:
    """Back-project z-depth through the pinhole and take central-difference cross products."""
    b, _, h, w = depth.shape
    f = focal_length(width)
    v, u = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    rays = torch.stack([(u - w / 2) / f, -(v - h / 2) / f, torch.ones_like(u)])
    points = depth.double() * rays.double()  # [B,3,H,W]
    dx = points[..., 1:-1, 2:] - points[..., 1:-1, :-2]
    dy = points[..., 2:, 1:-1] - points[..., :-2, 1:-1]
    normal = F.normalize(torch.cross(dx, dy, dim=1), dim=1)
    facing = (normal * points[..., 1:-1, 1:-1]).sum(1, keepdim=True) > 0
    return torch.where(facing, -normal, normal)


def test_normals_agree_with_depth_finite_differences_on_planar_regions():
    split = small().load("train")
    depth, normal = split.targets["depth"], split.targets["normal"]
    seg, edge = split.targets["seg"].long(), split.targets["edge"].bool()[:, 0]
    estimated = normals_from_depth(depth, 96)
    interior = ~F.max_pool2d(edge[:, None].float(), 5, 1, 2)[:, 0].bool()  # 2+ pixels from any edge
    planar = torch.isin(seg, torch.tensor([FLOOR, WALL, CEILING, BOX])) & interior
    planar = planar[:, 1:-1, 1:-1]
    cosine = (estimated * normal[..., 1:-1, 1:-1].double()).sum(1)[planar]
    angle = torch.rad2deg(torch.acos(cosine.clamp(-1, 1)))
    assert planar.sum() > 10_000
    assert torch.quantile(angle, 0.99) < 1.0, angle.max()


def test_cls_is_exactly_the_set_of_classes_in_seg():
    split = small().load("val")
    seg, cls = split.targets["seg"].long(), split.targets["cls"]
    present = torch.stack([torch.bincount(s.flatten(), minlength=len(CLASSES)) > 0 for s in seg]).float()
    assert torch.equal(present, cls)
    assert cls.sum(0).min() < len(cls)  # object classes come and go between scenes


def test_same_parameters_give_identical_bytes_and_other_seeds_differ():
    a = small().load_rows("train", 0, 6)
    b = small().load_rows("train", 0, 6)
    c = small(seed=1).load_rows("train", 0, 6)
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert a["image"].tobytes() != c["image"].tobytes()


def test_any_rows_render_alone_to_the_bytes_of_the_whole_split():
    """``load_rows`` (what a prepare of a set larger than memory renders, a chunk at a time) across chunk borders."""
    dataset = small(train=40)
    whole = dataset.load("train")
    for start, stop in ((0, 3), (5, 37), (30, 40), (33, 99)):
        rows = dataset.load_rows("train", start, stop)
        assert rows["image"].tobytes() == whole.images[start:stop].numpy().tobytes()
        assert all(rows[k].tobytes() == whole.targets[k][start:stop].numpy().tobytes() for k in whole.targets)


def test_a_split_does_not_change_when_another_is_resized():
    assert np.array_equal(small(train=12).load("test").images, small(train=40).load("test").images)


def test_cache_is_keyed_by_parameters(dataset_cache):
    first = small(test=5).load("test")
    files = sorted(dataset_cache.glob("synthrooms-test-*"))
    again = small(test=5).load("test")
    assert sorted(dataset_cache.glob("synthrooms-test-*")) == files and torch.equal(first.images, again.images)
    small(test=6).load("test")
    assert len(list(dataset_cache.glob("synthrooms-test-*"))) == len(files) + 1


def test_labels_have_their_documented_ranges():
    split = small().load("train")
    t = split.targets
    assert split.images.dtype == torch.uint8 and split.images.shape == (12, 3, 64, 96)
    assert (t["depth"] > 0).all()
    assert torch.allclose(t["normal"].norm(dim=1), torch.ones(1), atol=1e-4)
    rays = camera_rays(64, 96).T.reshape(1, 3, 64, 96)
    assert ((t["normal"] * rays).sum(1) < 0).all()  # every visible surface faces the camera
    assert set(t["edge"].unique().tolist()) == {0, 1}
    assert 0 <= t["keypoint"].min() and t["keypoint"].max() <= 1 and (t["keypoint"] > 0.99).any()
    assert 0 < t["shading"].min() and t["shading"].max() <= 1
