"""A push killed during its final ``uploads/complete`` succeeds on the first rerun (11, 2.6)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from robosync.client import Project
from robosync.client.wire import CompleteItem, CompleteResponse
from robosync.digest import BLOCK_SIZE
from tests.client.clirobot import CliFleet, CliRobot
from tests.client.conftest import folder_digests, sha


class KilledDuringComplete(BaseException):
    """Stands for the kill: the push dies as its completion request leaves."""


def _open(r: CliRobot) -> Project:
    return Project.open(r.root, settings=r.settings)


def test_push_killed_while_completing_succeeds_on_the_first_rerun(cli_fleet: CliFleet):
    r = cli_fleet.robot("r1")
    data = uuid.uuid4().bytes * (BLOCK_SIZE // 16) + b"tail"  # two blocks: a multipart upload
    r.write("big.bin", data)
    r.run("init", f"k-{uuid.uuid4().hex[:10]}")

    with _open(r) as p:
        sent: list[CompleteItem] = []

        def killed(items: list[CompleteItem]) -> CompleteResponse:
            sent.extend(items)
            raise KilledDuringComplete

        p.api.complete_uploads = killed  # type: ignore[method-assign]
        with pytest.raises(KilledDuringComplete):
            p.push()
    upload_id = sent[0].upload_id
    assert upload_id

    # The killed run's completion, still running on the server, finishes its
    # store step between the rerun's plan (which saw every part done) and the
    # rerun's own completion: the store's upload is consumed by then.
    with _open(r) as p:
        real = p.api.complete_uploads

        def after_the_other_completion(items: list[CompleteItem]) -> CompleteResponse:
            for d in Path(cli_fleet.server.data_dir).rglob(f"uploads/{upload_id}"):
                shutil.rmtree(d)
            p.api.complete_uploads = real  # type: ignore[method-assign]
            return real(items)

        p.api.complete_uploads = after_the_other_completion  # type: ignore[method-assign]
        result = p.push()
    assert result.committed and result.version == 1

    copy = cli_fleet.robot("r2")
    copy.home.mkdir(parents=True)
    with _open(r) as p:
        project = p.config.project_name
    copy.run("clone", project, str(copy.root), cwd=copy.home)
    assert folder_digests(copy.root) == {"big.bin": sha(data)}
