"""Projects and their history; a project of another user does not exist for the caller."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as DbIntegrityError
from sqlalchemy.orm import Session

from robosync.errors import AlreadyExists, Gone, InvalidInput, NotFound
from robosync.protocol import ProjectInfo, VersionInfo
from robosync.server.db.models import Project, Version, utcnow
from robosync.server.services.accounts import Principal


def project_info(project: Project) -> ProjectInfo:
    """The API view of a project row."""
    return ProjectInfo(
        id=project.id,
        name=project.name,
        head_version=project.head_version,
        file_count=project.file_count,
        total_bytes=project.total_bytes,
        created_at=project.created_at,
        updated_at=project.updated_at,
    )


def create_project(session: Session, who: Principal, name: str) -> Project:
    """Create an empty project (version 0) owned by the caller."""
    exists = session.scalar(
        select(Project.id).where(Project.owner_id == who.user_id, Project.name == name)
    )
    if exists is not None:
        raise AlreadyExists(f"project {name!r} already exists", {"name": name, "id": exists})
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


def list_projects(session: Session, who: Principal, name: str | None = None) -> list[Project]:
    """The caller's projects by name, optionally only the one called ``name``."""
    query = select(Project).where(Project.owner_id == who.user_id).order_by(Project.name)
    if name is not None:
        query = query.where(Project.name == name)
    return list(session.scalars(query))


def get_project(session: Session, who: Principal, project_id: int) -> Project:
    """The caller's project ``project_id``; :class:`NotFound` if absent or not theirs."""
    project = session.get(Project, project_id)
    if project is None or project.owner_id != who.user_id:
        raise NotFound(f"no project {project_id}", {"project": project_id})
    return project


def list_versions(session: Session, project: Project) -> list[VersionInfo]:
    """The project's history, newest first."""
    rows = session.scalars(
        select(Version).where(Version.project_id == project.id).order_by(Version.number.desc())
    )
    return [
        VersionInfo(
            number=v.number,
            robot=v.robot,
            message=v.message,
            created_at=v.created_at,
            files_added=v.files_added,
            files_removed=v.files_removed,
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
