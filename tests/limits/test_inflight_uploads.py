"""The per-user cap on uploads presigned but not completed, counted in the metadata DB."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from robosync.errors import RateLimited
from robosync.server.db.models import BLOB_PENDING, BLOB_PRESENT, Blob, Upload, User
from robosync.server.limits import (
    INFLIGHT_UPLOADS,
    InflightCap,
    InflightUploads,
    count_inflight_uploads,
)

WINDOW = 900
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

# --- the policy (pure) ------------------------------------------------------


def test_over_the_cap_is_refused_naming_the_limit() -> None:
    cap = InflightCap(10)
    with pytest.raises(RateLimited) as caught:
        cap.check(InflightUploads(8), requested=3)
    err = caught.value
    assert err.status == 429
    assert err.details["limit"] == INFLIGHT_UPLOADS
    assert err.details["max_inflight"] == 10
    assert err.retry_after >= 1
    assert "in flight" in err.message


def test_up_to_the_cap_is_allowed() -> None:
    InflightCap(10).check(InflightUploads(7), requested=3)


def test_asking_for_nothing_new_is_allowed_even_over_the_cap() -> None:
    # A resumed push re-asks for sessions it already holds: nothing new, no refusal.
    InflightCap(10).check(InflightUploads(50), requested=0)


def test_a_batch_larger_than_the_cap_starts_when_nothing_is_in_flight() -> None:
    cap = InflightCap(10)
    cap.check(InflightUploads(0), requested=1000)
    with pytest.raises(RateLimited):
        cap.check(InflightUploads(1, NOW + timedelta(seconds=60)), requested=1000, now=NOW)


def test_zero_disables_the_cap() -> None:
    InflightCap(0).check(InflightUploads(10**6), requested=10**6)


def test_retry_after_is_never_later_than_the_oldest_session_stops_counting() -> None:
    cap = InflightCap(1, retry_hint_seconds=30)
    with pytest.raises(RateLimited) as soon:
        cap.check(InflightUploads(1, NOW + timedelta(seconds=2.5)), requested=1, now=NOW)
    assert soon.value.retry_after == 3
    with pytest.raises(RateLimited) as later:
        cap.check(InflightUploads(1, NOW + timedelta(seconds=600)), requested=1, now=NOW)
    assert later.value.retry_after == 30


# --- the count (real SQLite and PostgreSQL) ---------------------------------


def new_user(engine: Engine) -> int:
    """A fresh user id."""
    with Session(engine) as session, session.begin():
        user = User(name=f"u-{uuid.uuid4().hex[:10]}")
        session.add(user)
        session.flush()
        return user.id


def presign(
    engine: Engine,
    user_id: int,
    n: int,
    *,
    at: datetime = NOW,
    expires_in: timedelta = timedelta(days=1),
) -> list[str]:
    """Record ``n`` upload sessions created at ``at``, as the upload service does."""
    digests = [uuid.uuid4().hex * 2 for _ in range(n)]
    with Session(engine) as session, session.begin():
        for d in digests:
            session.add(Blob(digest=d, size=1, state=BLOB_PENDING, created_at=at))
            session.add(
                Upload(
                    digest=d,
                    user_id=user_id,
                    upload_id=None,
                    size=1,
                    parts=1,
                    blocks="00" * 32,
                    created_at=at,
                    expires_at=at + expires_in,
                )
            )
    return digests


def inflight(engine: Engine, user_id: int, now: datetime = NOW) -> InflightUploads:
    """The user's in-flight uploads as the server would count them."""
    with Session(engine) as session:
        return count_inflight_uploads(session, user_id, WINDOW, now=now)


def test_presigned_uploads_count_until_the_cap_refuses(metadata_engine: Engine) -> None:
    user = new_user(metadata_engine)
    cap = InflightCap(5)
    presign(metadata_engine, user, 4)
    now_inflight = inflight(metadata_engine, user)
    assert now_inflight.count == 4
    assert now_inflight.next_release == NOW + timedelta(seconds=WINDOW)
    cap.check(now_inflight, requested=1, now=NOW)
    with pytest.raises(RateLimited) as caught:
        cap.check(now_inflight, requested=2, now=NOW)
    assert caught.value.details["limit"] == INFLIGHT_UPLOADS


def test_completing_uploads_releases_their_slots(metadata_engine: Engine) -> None:
    user = new_user(metadata_engine)
    digests = presign(metadata_engine, user, 5)
    with Session(metadata_engine) as session, session.begin():
        session.execute(
            update(Upload).where(Upload.digest.in_(digests[:3])).values(completed_at=NOW)
        )
    assert inflight(metadata_engine, user).count == 2
    InflightCap(5).check(inflight(metadata_engine, user), requested=3, now=NOW)


def test_a_blob_made_present_by_anyone_stops_counting(metadata_engine: Engine) -> None:
    user = new_user(metadata_engine)
    digests = presign(metadata_engine, user, 3)
    with Session(metadata_engine) as session, session.begin():
        session.execute(update(Blob).where(Blob.digest == digests[0]).values(state=BLOB_PRESENT))
    assert inflight(metadata_engine, user).count == 2


def test_sessions_of_a_crashed_robot_stop_counting_after_the_window(
    metadata_engine: Engine,
) -> None:
    user = new_user(metadata_engine)
    presign(metadata_engine, user, 5, at=NOW - timedelta(seconds=WINDOW + 1))
    presign(metadata_engine, user, 1, at=NOW - timedelta(seconds=10))
    counted = inflight(metadata_engine, user)
    assert counted.count == 1
    assert counted.next_release == NOW + timedelta(seconds=WINDOW - 10)


def test_expired_sessions_stop_counting(metadata_engine: Engine) -> None:
    user = new_user(metadata_engine)
    presign(metadata_engine, user, 3, expires_in=timedelta(seconds=30))
    presign(metadata_engine, user, 1)
    assert inflight(metadata_engine, user, now=NOW + timedelta(seconds=60)).count == 1


def test_one_users_uploads_do_not_count_against_another(metadata_engine: Engine) -> None:
    flooder, other = new_user(metadata_engine), new_user(metadata_engine)
    presign(metadata_engine, flooder, 20)
    assert inflight(metadata_engine, other) == InflightUploads(0)
    InflightCap(5).check(inflight(metadata_engine, other), requested=5, now=NOW)
