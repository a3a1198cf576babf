"""The partial-label track (papers 002-004): every (dataset x scenario x method x seed) job, scored by ΔMTL."""
from . import track  # noqa: F401  (registers the track)
