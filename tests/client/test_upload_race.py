"""Two users pushing the same new image at the same moment: both pushes succeed."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from tests.client.conftest import Robot, project_name
from tests.fixtures.server import ServerProcess


def _user_robot(server: ServerProcess, tmp_path: Path, name: str) -> Robot:
    token = server.make_token(f"user-{uuid.uuid4().hex[:8]}", name)
    return Robot(name, server.url, token, tmp_path / name)


def test_two_users_pushing_the_same_new_image_at_once_both_succeed(
    server: ServerProcess, tmp_path: Path
) -> None:
    image = os.urandom(50_000)  # one block: a single PUT to the blob's own key
    alice, bob = _user_robot(server, tmp_path, "alice"), _user_robot(server, tmp_path, "bob")
    names = {"alice": project_name(), "bob": project_name()}
    with alice.init(names["alice"]) as mine, bob.init(names["bob"]) as theirs:
        mine.save_image("cam/0001.jpg", image)
        theirs.save_image("cam/0001.jpg", image)
        real_complete = theirs.api.complete_uploads
        raced: list[Any] = []

        def alice_completes_first(items: Any) -> Any:
            # Bob has PUT the same bytes to the same key; alice's whole push lands
            # between his PUT and his completion: the closest possible race.
            if not raced:
                raced.append(mine.push())
            return real_complete(items)

        theirs.api.complete_uploads = alice_completes_first  # type: ignore[method-assign]
        result = theirs.push()
    assert raced and raced[0].version == 1, "alice's push"
    assert result.version == 1, "bob's push"
    for robot in (alice, bob):
        copy = Robot(robot.name, robot.server, robot.token, tmp_path / "copies" / robot.name)
        with copy.clone(names[robot.name]):
            assert (copy.root / "cam/0001.jpg").read_bytes() == image
