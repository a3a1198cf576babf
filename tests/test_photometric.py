"""JTR's photometric RandAugment, vectorised: every operation equals torchvision's tensor function or PIL's on
the 8-bit image, as the authors' datasets/randaugment.py applies them, image by image."""
import pytest
import torch
import torchvision.transforms as T
from torchvision.transforms import functional as TF

from mtlbench.data.augment import Augment
from mtlbench.data.photometric import BINS, OPS, RandAugment


def images(n=4, h=12, w=10):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(n, 3, h, w, generator=g)
    x[1] = x[1] * 0.3 + 0.2  # a low-contrast image
    x[2, :, :, :5] = 0.5  # large flat areas
    return x


def reference(image, name, level, negative):
    """One image, as ImgAugment._apply_op does it (torchvision functional; PIL for three operations)."""
    magnitude = {"brightness": torch.linspace(0.0, 0.9, BINS), "color": torch.linspace(0.0, 0.9, BINS),
                 "contrast": torch.linspace(0.0, 0.9, BINS), "sharpness": torch.linspace(0.0, 0.9, BINS),
                 "posterize": 8 - (torch.arange(BINS) / ((BINS - 1) / 4)).round().int(),
                 "solarize": torch.linspace(255.0, 0.0, BINS)}.get(name)
    value = float(magnitude[level]) if magnitude is not None else 0.0
    if name in ("brightness", "color", "contrast", "sharpness") and negative:
        value = -value
    pil = lambda op: T.ToTensor()(op(T.ToPILImage()(image)))  # noqa: E731
    return {"identity": lambda: image,
            "brightness": lambda: TF.adjust_brightness(image, 1.0 + value),
            "color": lambda: TF.adjust_saturation(image, 1.0 + value),
            "contrast": lambda: TF.adjust_contrast(image, 1.0 + value),
            "sharpness": lambda: TF.adjust_sharpness(image, 1.0 + value),
            "posterize": lambda: pil(lambda im: TF.posterize(im, int(value))),
            "solarize": lambda: pil(lambda im: TF.solarize(im, value)),
            "autocontrast": lambda: TF.autocontrast(image),
            "equalize": lambda: pil(TF.equalize)}[name]()


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("level", [0, 3, 5, 30])
def test_each_operation_equals_the_authors_per_image_one(name, level):
    x = images()
    n = len(x)
    op = torch.full((n,), OPS.index(name))
    negative = torch.tensor([False, True, False, True])
    ours = RandAugment().apply(x, op, torch.full((n,), level), negative)
    for i in range(n):
        assert torch.allclose(ours[i], reference(x[i], name, level, bool(negative[i])), atol=1e-6), (name, i)


def test_every_image_draws_its_own_operations_and_zero_ops_is_the_identity():
    x = images(n=64, h=8, w=8)
    out = RandAugment(2, 6)(x, torch.Generator().manual_seed(0))
    changed = (out - x).abs().flatten(1).amax(1) > 0
    assert changed.any() and not changed.all()  # some drew Identity twice (or a no-op level)
    op, level, _ = RandAugment(2, 6).draw(10_000, torch.Generator().manual_seed(1), torch.device("cpu"))
    assert set(op.tolist()) == set(range(len(OPS))) and set(level.tolist()) == set(range(6))
    assert Augment(photometric_ops=0).photometric(x, torch.Generator()) is x
