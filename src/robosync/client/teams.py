"""Finding a project by ``NAME`` or ``OWNER/NAME`` among the ones a user may read."""

from __future__ import annotations

from robosync.client.api import Api
from robosync.client.deferred import wire
from robosync.errors import InvalidInput, NotFound


def split_spec(spec: str) -> tuple[str | None, str]:
    """``"alice/scans"`` → ``("alice", "scans")``; ``"scans"`` → ``(None, "scans")``."""
    owner, _, name = spec.rpartition("/")
    if not name or (owner == "" and "/" in spec):
        raise InvalidInput(f"{spec!r} is not a project: write NAME or OWNER/NAME")
    return owner or None, name


def find_project(api: Api, spec: str, *, trash: bool = False) -> wire.ProjectInfo:
    """The project ``spec`` names (``NAME`` or ``OWNER/NAME``).

    A bare name means the user's own project of that name if there is one,
    else the single shared project of that name; two shared projects of that
    name need ``OWNER/NAME``. In the trash, the most recently deleted wins.
    """
    owner, name = split_spec(spec)
    listed = api.project_list(name, owner, trash=trash)
    found = [p for p in listed.projects if p.name == name]
    where = "in the trash" if trash else f"on {api.server}"
    if not found:
        see = "robosync trash" if trash else "robosync projects"
        raise NotFound(f"no project {spec!r} {where}; see `{see}`", {"project": spec})
    if trash:
        return max(found, key=lambda p: (p.deleted_at is not None, p.deleted_at, p.id))
    own = [p for p in found if p.owner == listed.user]
    if owner is None and own:
        return own[0]
    if len(found) > 1:
        choices = ", ".join(f"{p.owner}/{p.name}" for p in found)
        raise InvalidInput(
            f"several projects are called {name!r} ({choices}); write OWNER/NAME",
            {"candidates": [f"{p.owner}/{p.name}" for p in found]},
        )
    return found[0]
