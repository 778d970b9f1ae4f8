"""The robot side of robosync: a project folder synced with a server.

Import from here; the submodules may change::

    from robosync.client import Project, clone

    project = Project.open("/data/run42")
    project.save_image("cam0/000001.png", data, meta={"exposure_ms": 4})
    project.push()
"""

# First: the placeholders of the modules loaded on first use (see deferred.py).
import robosync.client.deferred  # noqa: F401  # isort: split
from robosync.client.api import Api
from robosync.client.history import Diff, Listing, get_file
from robosync.client.leftout import LeftOut
from robosync.client.lock import ProjectLocked
from robosync.client.merge import Entry, MergeNote, Policy, merge
from robosync.client.project import (
    EvictResult,
    NotAProject,
    Project,
    PullResult,
    PushResult,
    Status,
    clone,
)
from robosync.client.settings import ClientSettings

__all__ = [
    "Api",
    "ClientSettings",
    "Diff",
    "Entry",
    "EvictResult",
    "LeftOut",
    "Listing",
    "MergeNote",
    "NotAProject",
    "Policy",
    "Project",
    "ProjectLocked",
    "PullResult",
    "PushResult",
    "Status",
    "clone",
    "get_file",
    "merge",
]
