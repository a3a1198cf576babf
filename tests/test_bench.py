import numpy as np

from mtlbench.bench import BenchConfig, growth, measure, table


def test_bench_measures_every_method_on_random_tensors():
    config = BenchConfig(height=32, width=32, model_width=0.0625, batch_size=2, steps=1, warmup=0, device="cpu")
    seconds = measure(config)
    assert set(seconds) == set(config.methods) and all(s > 0 for s in seconds.values())
    assert "| supervised |" in table(config, seconds) and "1.00x" in table(config, seconds)


def test_growth_fit_tells_linear_from_quadratic():
    n = np.arange(2, 8)
    assert "quadratic term: 100%" in growth(n, 0.01 * n ** 2)
    assert "quadratic term: 0%" in growth(n, 0.3 + 0.05 * n)
