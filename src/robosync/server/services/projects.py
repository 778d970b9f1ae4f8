"""Projects and their history; a project the caller may not read does not exist for them."""

from __future__ import annotations

from typing import cast

from sqlalchemy import literal, select
from sqlalchemy.exc import IntegrityError as DbIntegrityError
from sqlalchemy.orm import Session

from robosync.errors import AlreadyExists, Gone, InvalidInput
from robosync.protocol import ProjectInfo, VersionInfo
from robosync.protocol import Role as RoleName
from robosync.server.access import Access, Role, authorize
from robosync.server.db.models import Member, Project, User, Version, utcnow
from robosync.server.services import audit
from robosync.server.services.accounts import Principal


def project_info(project: Project, owner: str = "", role: str = Role.ADMIN) -> ProjectInfo:
    """The API view of a project row, as seen by a caller with ``role``."""
    return ProjectInfo(
        id=project.id,
        name=project.name,
        owner=owner,
        role=cast(RoleName, str(role)),
        head_version=project.head_version,
        file_count=project.file_count,
        total_bytes=project.total_bytes,
        created_at=project.created_at,
        updated_at=project.updated_at,
        deleted_at=project.deleted_at,
    )


def access_info(session: Session, access: Access) -> ProjectInfo:
    """The API view of a project the caller reached through :func:`authorize`."""
    owner = session.get_one(User, access.project.owner_id).name
    return project_info(access.project, owner, access.role)


def create_project(session: Session, who: Principal, name: str) -> Project:
    """Create an empty project (version 0) owned by the caller."""
    _check_name_free(session, who.user_id, name)
    now = utcnow()
    project = Project(owner_id=who.user_id, name=name, created_at=now, updated_at=now)
    session.add(project)
    try:
        session.flush()
    except DbIntegrityError as e:  # created concurrently by another request
        raise AlreadyExists(f"project {name!r} already exists", {"name": name}) from e
    session.add(Version(project_id=project.id, number=0, robot=who.robot, created_at=now))
    session.flush()
    return project


def _check_name_free(session: Session, owner_id: int, name: str) -> None:
    exists = session.scalar(
        select(Project.id).where(
            Project.owner_id == owner_id, Project.name == name, Project.deleted_at.is_(None)
        )
    )
    if exists is not None:
        raise AlreadyExists(f"project {name!r} already exists", {"name": name, "id": exists})


def list_projects(
    session: Session,
    who: Principal,
    name: str | None = None,
    owner: str | None = None,
    *,
    deleted: bool = False,
) -> list[ProjectInfo]:
    """The live projects the caller may read (own and shared), by owner then name.

    ``name`` and ``owner`` filter; ``deleted`` lists the trash of projects the
    caller administers instead.
    """
    shared = (
        select(Project, User.name, Member.role)
        .join(Member, Member.project_id == Project.id)
        .join(User, User.id == Project.owner_id)
        .where(Member.user_id == who.user_id)
    )
    own = select(Project, User.name, literal(Role.ADMIN.value)).join(
        User, User.id == Project.owner_id
    )
    own = own.where(Project.owner_id == who.user_id)
    found: list[ProjectInfo] = []
    for query in (own, shared):
        query = query.where(
            Project.deleted_at.is_not(None) if deleted else Project.deleted_at.is_(None)
        )
        if name is not None:
            query = query.where(Project.name == name)
        if owner is not None:
            query = query.where(User.name == owner)
        for project, owner_name, role in session.execute(query):
            if deleted and role != Role.ADMIN:
                continue
            found.append(project_info(project, owner_name, Role(role)))
    found.sort(key=lambda p: (p.owner != who.user_name, p.owner, p.name, p.id))
    return found


def get_project(
    session: Session, who: Principal, project_id: int, needed: Role = Role.READ
) -> Project:
    """Project ``project_id`` if the caller holds ``needed`` in it (see :mod:`access`)."""
    return authorize(session, who.user_id, project_id, needed).project


def rename_project(session: Session, who: Principal, project_id: int, name: str) -> Access:
    """Rename a project (an admin's action); its id, and so every clone, stays."""
    access = authorize(session, who.user_id, project_id, Role.ADMIN, lock=True)
    project = access.project
    old = project.name
    if old == name:
        return access
    _check_name_free(session, project.owner_id, name)
    project.name = name
    project.updated_at = utcnow()
    try:
        session.flush()
    except DbIntegrityError as e:
        raise AlreadyExists(f"project {name!r} already exists", {"name": name}) from e
    audit.record(session, audit.Actor.of(who), audit.RENAME, project, old=old, new=name)
    return access


def delete_project(session: Session, who: Principal, project_id: int) -> Access:
    """Move a project into the trash (an admin's action); ``restore`` brings it back."""
    access = authorize(session, who.user_id, project_id, Role.ADMIN, lock=True)
    access.project.deleted_at = utcnow()
    audit.record(session, audit.Actor.of(who), audit.DELETE, access.project)
    session.flush()
    return access


def restore_project(session: Session, who: Principal, project_id: int) -> Access:
    """Take a project out of the trash, under its name if that is still free."""
    access = authorize(session, who.user_id, project_id, Role.ADMIN, deleted=True, lock=True)
    project = access.project
    taken = session.scalar(
        select(Project.id).where(
            Project.owner_id == project.owner_id,
            Project.name == project.name,
            Project.deleted_at.is_(None),
        )
    )
    if taken is not None:
        raise AlreadyExists(
            f"a live project is called {project.name!r} now; rename it, then restore again",
            {"name": project.name, "id": taken},
        )
    project.deleted_at = None
    audit.record(session, audit.Actor.of(who), audit.RESTORE, project)
    session.flush()
    return access


def list_versions(
    session: Session, project: Project, before: int | None = None, limit: int | None = None
) -> list[VersionInfo]:
    """The project's history, newest first; optionally only versions below ``before``."""
    query = select(Version).where(Version.project_id == project.id).order_by(Version.number.desc())
    if before is not None:
        query = query.where(Version.number < before)
    if limit is not None:
        query = query.limit(limit)
    rows = session.scalars(query)
    return [
        VersionInfo(
            number=v.number,
            robot=v.robot,
            message=v.message,
            created_at=v.created_at,
            files_added=v.files_added,
            files_removed=v.files_removed,
            files_modified=v.files_modified,
            file_count=v.file_count,
            total_bytes=v.total_bytes,
        )
        for v in rows
    ]


def check_version_kept(session: Session, project_id: int, version: int, head: int) -> None:
    """Refuse a version past the head (400) or one that retention pruned (410)."""
    if version > head:
        raise InvalidInput(
            f"version {version} does not exist (head is {head})", {"head_version": head}
        )
    if version == head:
        return
    kept = session.scalar(
        select(Version.number).where(Version.project_id == project_id, Version.number == version)
    )
    if kept is None:
        raise Gone(
            f"version {version} was pruned by garbage collection (head is {head}); "
            "clone the project again into a new folder",
            {"head_version": head, "version": version},
        )


def project_at(
    session: Session, who: Principal, project_id: int, version: int | None
) -> tuple[Project, int]:
    """The caller's project and the version asked for (default head), if it is kept."""
    project = get_project(session, who, project_id)
    served = project.head_version if version is None else version
    check_version_kept(session, project_id, served, project.head_version)
    return project, served
