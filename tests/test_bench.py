import numpy as np

from mtlbench.bench import PLAIN_LABEL, BenchConfig, bench_tasks, growth, measure, part_recipes, table
from mtlbench.methods import AXES


def test_bench_measures_every_method_on_random_tensors():
    config = BenchConfig(height=32, width=32, model_width=0.0625, batch_size=2, steps=1, warmup=0, device="cpu")
    seconds = measure(config)
    assert set(seconds) == set(config.methods) and all(s > 0 for s in seconds.values())
    assert "| supervised |" in table(config, seconds) and "1.00x" in table(config, seconds)


def test_growth_fit_tells_linear_from_quadratic():
    n = np.arange(2, 8)
    assert "quadratic term: 100%" in growth(n, 0.01 * n ** 2)
    assert "quadratic term: 0%" in growth(n, 0.3 + 0.05 * n)
    assert "flat" in growth(n, 0.5 + 0.001 * np.sin(n))


def test_bench_parts_swaps_every_part_of_three_axes_into_the_plain_recipe():
    config = BenchConfig(height=32, width=32, model_width=0.0625, batch_size=4, steps=1, warmup=0, device="cpu",
                         scenario="full")
    recipes = part_recipes(config)
    expected = {f"{axis}={name}" for axis in ("supervision", "weighting", "gradients") for name in AXES[axis].list()}
    assert set(recipes) - {PLAIN_LABEL} == expected - {"supervision=full", "weighting=uniform", "gradients=sum"}
    assert all(sum(recipes[label][axis] != recipes[PLAIN_LABEL][axis] for axis in AXES) == 1 for label in recipes
               if label != PLAIN_LABEL)
    seconds = measure(config, {k: recipes[k] for k in (PLAIN_LABEL, "weighting=amtl", "supervision=ista")})
    rendered = table(config, seconds)
    assert "cost vs uniform+sum" in rendered and "| uniform+sum |" in rendered and "1.00x" in rendered


def test_bench_trains_the_tasks_of_the_dataset_it_is_given_without_its_files():
    """Yun and Cho 2023 Table 7's tasks (VOC detection and segmentation, NYU depth) from a union's settings."""
    union = ('{"name": "union", "parts": [{"name": "pascal_voc_detection", "root": "/nowhere", "segmentation": true, '
             '"tasks": ["detection", "seg"]}, {"name": "nyu_depth", "root": "/nowhere", "tasks": ["depth"]}]}')
    config = BenchConfig(dataset=union, tasks=("detection", "seg", "depth"), height=128, width=128)
    tasks = bench_tasks(config)
    assert list(tasks) == ["detection", "seg", "depth"]
    assert tasks["detection"].channels == 20 and tasks["seg"].channels == 21
    assert tasks["detection"].image_size == (128, 128) and tasks["detection"].anchors.min_level == 3
