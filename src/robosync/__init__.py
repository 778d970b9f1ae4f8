"""robosync: versioned, deduplicated, verified transfer of robot images.

The public surface for robot software is :mod:`robosync.client`; the shared
content address and path rules live in :mod:`robosync.digest` and
:mod:`robosync.paths`.
"""

__version__ = "0.1.0"
