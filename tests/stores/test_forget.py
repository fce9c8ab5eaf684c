"""`lof forget`, opt-out and opt-in over every store backend (SQLite, PostgreSQL, MariaDB,
DynamoDB on moto_server): an interrupted erasure finishes on rerun, the erasure entry and the
opt-out list hold pseudonyms only, and nothing runs without LOF_PSEUDONYM_SECRET."""

from __future__ import annotations

import pickle
from datetime import date
from pathlib import Path

import pytest

from lof.core.config import get_settings
from lof.core.errors import ConfigError, DataError
from lof.governance import erasure as governance
from lof.governance import optout, pseudonyms
from lof.stores import compact, open_feature_store, open_prediction_store
from lof.stores.feedback import open_feedback_store
from lof.stores.interventions import open_intervention_store
from lof.stores.privacy import open_privacy_store
from tests.stores.conftest import scan, sql_rows
from tests.stores.test_contract import predictions
from tests.stores.test_erasure import DAYS, action_on, feature_days, feedback_on

X, Y = 4_501_234_567, 13  # X is forgotten, Y opts out; 11 and 21 stay
SECRET = "governance-test-secret-0123456789"


def settings_for(home: Path, url: str, **extra: object):
    return get_settings(home=home, store_url=url, pseudonym_secret=SECRET, **extra)


def fill(settings) -> None:
    """Features, predictions (two days, two classes), feedback and LOF_HOME cache files."""
    url = settings.store_url
    features = open_feature_store(url, state_dir=settings.home / "cache")
    for day, increment, state in feature_days():
        state = state.replace({"user_id": {12: X}})
        features.write_day(
            day=day, increments=increment.replace({"user_id": {12: X}}), states=state
        )
    store = open_prediction_store(url)
    store.write_day(day=DAYS[0], predictions=predictions([(1, 11, 2), (1, X, 1), (1, Y, 3)]))
    store.write_day(day=DAYS[1], predictions=predictions([(1, X, 2), (1, Y, 3), (2, 21, 5)]))
    feedback = open_feedback_store(url)
    for user in (X, Y, 11):
        feedback.put(feedback_on(user, DAYS[0], "t1"))
    actions = open_intervention_store(url)
    for user in (X, 11):
        actions.put(action_on(user, DAYS[0], "t1"))
    cache = settings.home / "cache" / "assessed-0123456789abcdef.pkl"
    cache.write_bytes(pickle.dumps((2, None, None, None)))


def users_of_predictions(url: str) -> set[int]:
    if url.startswith("dynamodb"):
        return {
            int(i["sk"]["S"]) for i in scan(url, "predictions") if i["pk"]["S"].startswith("P#")
        }
    return {int(u) for (u,) in sql_rows(url, "SELECT user_id FROM lof_predictions")}


def feature_users(settings) -> set[int]:
    store = open_feature_store(settings.store_url)
    return {
        int(u)
        for meta in store._days(first=None, last=date.max).values()
        for blob in store._day_blobs(meta).values()
        for u in compact.decode(blob).users
    }


def privacy_text(url: str) -> str:
    if url.startswith("dynamodb"):
        return str(list(scan(url, "privacy")))
    tables = ("lof_opt_outs", "lof_erasures", "lof_hidden", "lof_privacy_meta")
    return str([sql_rows(url, f"SELECT * FROM {table}") for table in tables])


class Interrupted(RuntimeError):
    pass


def test_an_interrupted_forget_finishes_on_rerun(
    any_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(tmp_path, any_store_url)
    (tmp_path / "cache").mkdir(exist_ok=True)
    fill(settings)

    def crash(*_: object) -> int:
        raise Interrupted("killed between the feedback and the features store")

    steps = dict(governance.FORGET_STEPS)
    monkeypatch.setattr(governance, "FORGET_STEPS", tuple({**steps, "features": crash}.items()))
    with pytest.raises(Interrupted):
        governance.forget(settings, [X])
    privacy = open_privacy_store(any_store_url)
    (entry,) = privacy.erasures()
    assert not entry.done and set(entry.removed) == {"predictions", "feedback", "interventions"}
    assert pseudonyms.optional(settings).of(X) in privacy.opted_out()  # first of all
    assert X not in users_of_predictions(any_store_url)
    assert X in feature_users(settings)  # the store after the crash: not erased yet

    monkeypatch.setattr(governance, "FORGET_STEPS", tuple(steps.items()))
    seen: list[tuple[str, int]] = []
    removed = governance.forget(settings, [X], progress=lambda name, n: seen.append((name, n)))

    assert [name for name, _ in seen] == ["features", "local files"]  # the rest was done
    assert removed.counts["predictions"] == 2 and removed.counts["feedback"] == 1
    assert removed.counts["interventions"] == 1
    assert [r.user_id for r in open_intervention_store(any_store_url).read_all()] == [11]
    assert removed.counts["features"] > 0 and removed.counts["local files"] == 2
    (entry,) = privacy.erasures()
    assert entry.done and entry.ids == 1 and entry.removed == removed.counts
    assert X not in feature_users(settings)
    assert {11, 21} <= feature_users(settings)
    assert users_of_predictions(any_store_url) == {11, Y, 21}
    assert [r.user_id for r in open_feedback_store(any_store_url).read_all()] == [11, Y]
    assert list((tmp_path / "cache").iterdir()) == []
    assert str(X) not in privacy_text(any_store_url)  # pseudonyms only, never the id
    # once finished, a rerun checks every store again and finds nothing
    again = governance.forget(settings, [X])
    assert "was finished" in again.note and again.counts == removed.counts
    assert privacy.erasures()[0].finished_at == entry.finished_at


def test_opt_out_removes_what_is_shown_and_opt_in_lets_the_student_back(
    any_store_url: str, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, any_store_url)
    (tmp_path / "cache").mkdir(exist_ok=True)
    fill(settings)

    removed = governance.opt_out(settings, [Y])

    assert removed.counts == {"predictions": 2, "feedback": 1}
    assert governance.is_opted_out(settings, Y) and not governance.is_opted_out(settings, X)
    assert Y not in users_of_predictions(any_store_url)
    privacy = open_privacy_store(any_store_url)
    for day in DAYS[:2]:  # each class page now says one student is not shown
        assert privacy.hidden_count(class_id=1, day=day) == 1
    assert privacy.hidden_count(class_id=2, day=DAYS[1]) == 0
    assert "1 newly opted out" in removed.note
    assert "0 newly opted out" in governance.opt_out(settings, [Y]).note

    back = governance.opt_in(settings, [Y])
    assert "1 taken off" in back.note and back.counts == {"local files": 1}
    assert not governance.is_opted_out(settings, Y)
    assert not list((tmp_path / "cache").glob("assessed-*.pkl"))  # read again in full


def test_without_the_secret_or_with_another_nothing_is_done(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lof.db'}"
    bare = get_settings(home=tmp_path, store_url=url)
    for command in (governance.forget, governance.opt_out, governance.opt_in):
        with pytest.raises(ConfigError, match="LOF_PSEUDONYM_SECRET is not set"):
            command(bare, [X])
    governance.opt_out(settings_for(tmp_path, url), [Y])
    other = get_settings(home=tmp_path, store_url=url, pseudonym_secret="another-secret-987654")
    with pytest.raises(ConfigError, match="not the secret the opt-out list was recorded under"):
        governance.forget(other, [X])
    with pytest.raises(ConfigError, match=r"1 student.* on the opt-out list"):
        optout.load(bare)  # the daily run refuses rather than scoring them again


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([], "at least one --user-id"),
        (["12", "x1"], "--user-id 'x1' is not a LEB2 user id"),
        (["0"], "--user-id '0'"),
        (["9" * 20], "is not a LEB2 user id"),
        ([str(n) for n in range(1, 1002)], "give at most 1000"),
    ],
)
def test_user_ids_are_checked(values: list[str], message: str) -> None:
    with pytest.raises(DataError, match=message):
        governance.check_user_ids(values)
    assert governance.check_user_ids(["7", " 3", "7"]) == [3, 7]
