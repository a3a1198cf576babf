"""The benchmark tracks, each a plugin of its own folder that registers itself in ``mtlbench.track.TRACKS``
(with its job kinds and resolvers in ``mtlbench.jobs``). A new track is a new folder and one line here."""
from . import budget, grouping, partial  # noqa: F401  (register the tracks)
