"""Tensor augmentation: geometry is consistent across image and every dense target."""
import torch
import torch.nn.functional as F

from mtlbench.data.augment import Augment
from mtlbench.data.synthrooms import SynthRooms

TASKS = SynthRooms().tasks()


def batch(n=6, h=32, w=48):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, h, w, generator=g)
    targets = {"seg": torch.randint(0, 7, (n, h, w), generator=g), "depth": torch.rand(n, 1, h, w, generator=g) + 1,
               "normal": F.normalize(torch.randn(n, 3, h, w, generator=g), dim=1), "cls": torch.rand(n, 7)}
    return images, targets


def test_flip_mirrors_every_map_and_negates_normal_x():
    images, targets = batch()
    out_images, out = Augment(scale_crop=False, flip=True)(images, targets, TASKS, torch.Generator().manual_seed(1))
    flipped = (out_images - images.flip(-1)).abs().flatten(1).amax(1) < 1e-5
    kept = (out_images - images).abs().flatten(1).amax(1) < 1e-5
    assert (flipped | kept).all() and flipped.any() and kept.any()
    assert torch.equal(out["seg"][flipped], targets["seg"][flipped].flip(-1))
    expected_normal = targets["normal"][flipped].flip(-1) * torch.tensor([-1.0, 1, 1]).view(1, 3, 1, 1)
    assert torch.allclose(out["normal"][flipped], expected_normal, atol=1e-5)
    assert torch.allclose(out["normal"][kept], targets["normal"][kept], atol=1e-5)
    assert torch.equal(out["cls"], targets["cls"])


def test_scale_crop_matches_interpolating_the_crop_and_divides_depth_by_the_scale():
    images, targets = batch(n=32)
    targets["depth"] = torch.full_like(targets["depth"], 3.0)
    out_images, out = Augment(scale_crop=True, flip=False)(images, targets, TASKS, torch.Generator().manual_seed(2))
    scale = 3.0 / out["depth"].flatten(1)[:, 0]
    assert {round(s, 3) for s in scale.tolist()} <= {1.0, 1.2, 1.5} and (scale > 1).any()
    i = int((scale > 1.1).nonzero()[0])
    h, w = 32, 48
    ch, cw = int(h / round(float(scale[i]), 3)), int(w / round(float(scale[i]), 3))
    # find the crop offset that reproduces the output with F.interpolate (as MTAN's RandomScaleCrop does)
    errors = {(top, left): (F.interpolate(images[i:i + 1, :, top:top + ch, left:left + cw], (h, w),
                                          mode="bilinear", align_corners=True) - out_images[i:i + 1]).abs().max()
              for top in range(h - ch + 1) for left in range(w - cw + 1)}
    assert min(errors.values()) < 1e-5


def test_disabled_augmentation_is_the_identity():
    images, targets = batch()
    out_images, out = Augment(False, False)(images, targets, TASKS, torch.Generator())
    assert out_images is images and out is targets


def test_scale_crop_resizes_image_and_normals_with_aligned_corners_as_the_authors():
    """dataset/nyuv2ssl.py (MTPSL) and datasets/nyuv2.py (JTR) resize the crop's image and normals with
    interpolate(..., mode="bilinear", align_corners=True); ``align_corners: false`` keeps mtlbench's earlier
    align_corners=False. The normals' resampling (x negated where mirrored) follows the image's."""
    images, targets = batch(n=32)
    targets["depth"] = torch.full_like(targets["depth"], 3.0)
    h, w = 32, 48
    for aligned in (True, False):
        out_images, out = Augment(True, True, aligned)(images, targets, TASKS, torch.Generator().manual_seed(2))
        scale = 3.0 / out["depth"].flatten(1)[:, 0]
        for i in (scale > 1.1).nonzero()[:3, 0].tolist():
            ch, cw = int(h / round(float(scale[i]), 3)), int(w / round(float(scale[i]), 3))
            errors = []
            for top in range(h - ch + 1):
                for left in range(w - cw + 1):
                    resized = F.interpolate(images[i:i + 1, :, top:top + ch, left:left + cw], (h, w),
                                            mode="bilinear", align_corners=aligned)
                    errors += [(candidate - out_images[i:i + 1]).abs().max() for candidate in (resized,
                                                                                              resized.flip(-1))]
            assert min(errors) < 1e-5, (aligned, i)
