"""The robot side of robosync: a project folder synced with a server.

Import from here; the submodules may change::

    from robosync.client import Project, clone

    project = Project.open("/data/run42")
    project.save_image("cam0/000001.png", data, meta={"exposure_ms": 4})
    project.push()
"""

import importlib
from typing import TYPE_CHECKING, Any

# First: the placeholders of the modules loaded on first use (see deferred.py).
import robosync.client.deferred  # noqa: F401  # isort: split

# Eager: every command loads it (through the index), and the name ``merge`` must be this
# function, not the submodule the import system would otherwise leave under that name.
from robosync.client.merge import Entry, MergeNote, Policy, merge

if TYPE_CHECKING:
    from robosync.client.api import Api
    from robosync.client.history import Diff, Listing, get_file
    from robosync.client.leftout import LeftOut
    from robosync.client.lock import ProjectLocked
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

# Where each name is defined. Importing the package (as ``robosync.client.cli`` does)
# loads none of them: each is imported when first read, so a command loads only what
# it uses.
_HOMES = {
    "Api": "api",
    "ClientSettings": "settings",
    "Diff": "history",
    "EvictResult": "project",
    "LeftOut": "leftout",
    "Listing": "history",
    "NotAProject": "project",
    "Project": "project",
    "ProjectLocked": "lock",
    "PullResult": "project",
    "PushResult": "project",
    "Status": "project",
    "clone": "project",
    "get_file": "history",
}


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` (PEP 562: only for names not loaded yet)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


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
