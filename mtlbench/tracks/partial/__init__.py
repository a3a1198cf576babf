"""The partial-label track (Li et al. 2022a, Yun and Cho 2023, Nishi et al. 2024): every (dataset x scenario x
method x seed) job, scored by ΔMTL."""
from . import track  # noqa: F401  (registers the track)
