"""Users, the reporting line, passwords and API tokens, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.loader import load
from engine.records import Actor
from engine.storage.database import create_engine
from engine.storage.migrate import initialise
from engine.storage.schema import build_schema
from engine.users import (
    Hierarchy,
    TokenNotFound,
    User,
    UserInvalid,
    UserNotFound,
    UserService,
    hash_token,
)

BLUEPRINT = """
formflow: 1
id: crm
title: CRM
roles:
  rep: {zh: 销售, en: Rep}
  manager: {zh: 经理, en: Manager}
  finance: {zh: 财务, en: Finance}
entities:
  deal:
    label: Deal
    fields:
      name: {type: text, label: Name}
"""

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def users(tmp_path: Path, db_url: str, clock: Clock) -> Iterator[UserService]:
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    bp = load(path)
    schema = build_schema(bp)
    engine = create_engine(db_url)
    initialise(engine, bp, schema)
    yield UserService(bp, schema, engine, clock=clock)
    engine.dispose()


def tree(users: UserService) -> None:
    """boss > (m1 > (r1, r2), m2 > r3); solo has no manager."""
    users.add("boss", roles=["manager"])
    users.add("m1", roles=["manager"], manager="boss")
    users.add("m2", roles=["manager"], manager="boss")
    users.add("r1", roles=["rep"], manager="m1")
    users.add("r2", roles=["rep"], manager="m1")
    users.add("r3", roles=["rep"], manager="m2")
    users.add("solo", roles=["rep"])


def db_row(users: UserService, name: str) -> dict[str, object]:
    with users.engine.connect() as conn:
        row = conn.execute(sa.select(users.users).where(users.users.c.name == name)).one()
    return dict(row._mapping)


# --------------------------------------------------------------------------- adding


def test_add_get_list(users: UserService, clock: Clock) -> None:
    added = users.add(
        "li.lei",
        roles=["rep", "finance", "rep"],
        display_name="  李雷 ",
        email="li.lei@example.cn",
        locale="zh-CN",
    )
    assert added == User(
        name="li.lei",
        display_name="李雷",
        email="li.lei@example.cn",
        roles=("rep", "finance"),
        manager=None,
        locale="zh",
        active=True,
    )
    assert users.get("li.lei") == added
    assert added.actor == Actor("li.lei", frozenset({"rep", "finance"}))
    assert added.label == "李雷"
    users.add("han.meimei", roles=["manager"])
    users.add("张伟", roles=["admin"], manager="han.meimei")
    assert [u.name for u in users.list()] == ["han.meimei", "li.lei", "张伟"]
    assert users.get("张伟").is_admin
    assert users.get("张伟").manager == "han.meimei"
    assert users.find("nobody") is None
    with pytest.raises(UserNotFound) as info:
        users.get("nobody")
    assert info.value.message("en") == "no user 'nobody'"
    assert info.value.http_status == 404
    row = db_row(users, "li.lei")
    assert row["created_at"] == clock.now
    assert row["password_hash"] is None
    assert row["roles"] == ["rep", "finance"]


@pytest.mark.parametrize(
    "name",
    ["", "-rm", ".hidden", "a b", "x" * 151, "li/lei", "semi;colon", "ｆｕｌｌ", "emoji🙂"],
)
def test_bad_names_are_refused(users: UserService, name: str) -> None:
    with pytest.raises(UserInvalid) as info:
        users.add(name, roles=["rep"])
    assert list(info.value.errors) == ["name"]
    assert info.value.as_dict("en")["name"][0].startswith("a user name is 1-150 letters")


@pytest.mark.parametrize(
    "name", ["a", "li.lei", "li_lei-2@corp.cn", "王小明", "x" * 150, "7eleven"]
)
def test_good_names(users: UserService, name: str) -> None:
    assert users.add(name, roles=["rep"]).name == name


def test_duplicate_names_also_by_case(users: UserService) -> None:
    users.add("Li.Lei", roles=["rep"])
    for name in ("Li.Lei", "li.lei", "LI.LEI"):
        with pytest.raises(UserInvalid) as info:
            users.add(name, roles=["rep"])
        assert info.value.as_dict("en") == {"name": ["user 'Li.Lei' already exists"]}
        assert info.value.as_dict("zh") == {"name": ["用户 'Li.Lei' 已存在"]}
    assert len(users.list()) == 1


def test_unknown_role_gets_did_you_mean_and_admin_is_builtin(users: UserService) -> None:
    with pytest.raises(UserInvalid) as info:
        users.add("li", roles=["rep", "mangaer"])
    assert info.value.as_dict("en") == {
        "roles": ["unknown role 'mangaer'; did you mean 'manager'?"]
    }
    assert info.value.as_dict("zh") == {"roles": ["没有角色 'mangaer'；是不是 'manager'？"]}
    assert info.value.message("en") == (
        "Invalid user: roles: unknown role 'mangaer'; did you mean 'manager'?"
    )
    assert info.value.http_status == 422
    with pytest.raises(UserInvalid) as info:
        users.add("li", roles=["zzz"])
    assert info.value.as_dict("en")["roles"][0].startswith("unknown role 'zzz'; use one of: ")
    with pytest.raises(UserInvalid) as info:
        users.add("li", roles=[])
    assert info.value.as_dict("en") == {"roles": ["needs at least one role"]}
    assert users.add("root", roles=["admin"]).roles == ("admin",)  # not in the blueprint


def test_every_bad_field_is_reported_at_once(users: UserService) -> None:
    with pytest.raises(UserInvalid) as info:
        users.add(
            "bad name",
            roles=["nope"],
            password="short",
            email="not-an-email",
            locale="fr",
            display_name="x" * 201,
        )
    assert set(info.value.errors) == {
        "name",
        "roles",
        "password",
        "email",
        "locale",
        "display_name",
    }
    assert info.value.as_dict("en")["password"] == ["at least 8 characters"]
    assert users.list() == []


def test_manager_must_exist(users: UserService) -> None:
    users.add("boss", roles=["manager"])
    with pytest.raises(UserInvalid) as info:
        users.add("li", roles=["rep"], manager="bos")
    assert info.value.as_dict("en") == {"manager": ["no user 'bos'; did you mean 'boss'?"]}
    with pytest.raises(UserInvalid):
        users.add("li", roles=["rep"], manager="li")  # not yet a user either
    assert [u.name for u in users.list()] == ["boss"]


def test_manager_cycles_are_refused(users: UserService) -> None:
    tree(users)
    with pytest.raises(UserInvalid) as info:
        users.set_manager("boss", "r1")  # r1 is below boss
    assert info.value.as_dict("en") == {
        "manager": ["'r1' reports to 'boss' and cannot be their manager"]
    }
    with pytest.raises(UserInvalid) as info:
        users.set_manager("m1", "m1")
    assert info.value.as_dict("en") == {"manager": ["cannot be their own manager"]}
    with pytest.raises(UserInvalid):
        users.set_manager("m1", "r2")
    assert users.get("boss").manager is None
    # a sideways move is fine, and the teams follow at once
    assert users.set_manager("r1", "m2").manager == "m2"
    assert users.team("m2") == {"m2", "r1", "r3"}
    assert users.team("m1") == {"m1", "r2"}
    assert users.set_manager("m1", None).manager is None
    assert users.team("boss") == {"boss", "m2", "r1", "r3"}
    with pytest.raises(UserNotFound):
        users.set_manager("ghost", "boss")


# --------------------------------------------------------------------------- passwords


def test_passwords_are_hashed_and_checked(users: UserService) -> None:
    users.add("li", roles=["rep"], password="correct horse")
    stored = db_row(users, "li")["password_hash"]
    assert isinstance(stored, str)
    assert "correct horse" not in stored
    assert stored.startswith("scrypt:")  # werkzeug's default method
    assert users.authenticate("li", "correct horse") == users.get("li")
    assert users.authenticate("li", "wrong horse!") is None
    assert users.authenticate("li", "") is None
    assert users.authenticate("nobody", "correct horse") is None
    users.set_password("li", "battery staple")
    assert users.authenticate("li", "correct horse") is None
    assert users.authenticate("li", "battery staple") is not None
    with pytest.raises(UserInvalid) as info:
        users.set_password("li", "1234567")
    assert info.value.as_dict("en") == {"password": ["at least 8 characters"]}
    with pytest.raises(UserInvalid):
        users.set_password("li", "x" * 1025)
    with pytest.raises(UserNotFound):
        users.set_password("nobody", "long enough")


def test_inactive_and_passwordless_users_cannot_sign_in(users: UserService) -> None:
    users.add("boss", roles=["admin"])
    users.add("li", roles=["rep"], password="correct horse")
    users.add("bot", roles=["rep"])  # no password: tokens only
    assert users.authenticate("bot", "") is None
    assert users.authenticate("bot", "anything at all") is None
    assert users.deactivate("li").active is False
    assert users.authenticate("li", "correct horse") is None
    assert users.activate("li").active is True
    assert users.authenticate("li", "correct horse") is not None


def test_the_last_active_admin_stays(users: UserService) -> None:
    users.add("root", roles=["admin"])
    with pytest.raises(UserInvalid) as info:
        users.deactivate("root")
    assert info.value.as_dict("en") == {"active": ["'root' is the last active admin"]}
    with pytest.raises(UserInvalid):
        users.set_roles("root", ["manager"])
    users.add("root2", roles=["admin", "rep"])
    assert users.set_roles("root", ["manager"]).roles == ("manager",)
    with pytest.raises(UserInvalid):
        users.deactivate("root2")
    with pytest.raises(UserInvalid) as info:
        users.set_roles("root2", ["rpe"])
    assert info.value.as_dict("en") == {"roles": ["unknown role 'rpe'; did you mean 'rep'?"]}


def test_set_profile(users: UserService) -> None:
    users.add("li", roles=["rep"], display_name="Li", email="li@x.cn")
    changed = users.set_profile("li", display_name="李雷", locale="en-US")
    assert (changed.display_name, changed.email, changed.locale) == ("李雷", None, "en")


# --------------------------------------------------------------------------- hierarchy


def test_team_over_three_levels(users: UserService) -> None:
    tree(users)
    assert users.team("boss") == {"boss", "m1", "m2", "r1", "r2", "r3"}
    assert users.team("m1") == {"m1", "r1", "r2"}
    assert users.team("m2") == {"m2", "r3"}
    assert users.team("r1") == {"r1"}
    assert users.team("solo") == {"solo"}
    assert users.team("not-a-user") == {"not-a-user"}
    users.deactivate("r2")  # a departed rep's deals still belong to the team
    assert users.team("m1") == {"m1", "r1", "r2"}
    users.add("r4", roles=["rep"], manager="r1")  # a fourth level appears at once
    assert users.team("boss") == {"boss", "m1", "m2", "r1", "r2", "r3", "r4"}
    assert users.team("r1") == {"r1", "r4"}


def test_manager_of_levels(users: UserService) -> None:
    tree(users)
    assert users.manager_of("r1") == "m1"
    assert users.manager_of("r1", levels=2) == "boss"
    assert users.manager_of("r1", levels=3) is None
    assert users.manager_of("boss") is None
    assert users.manager_of("solo") is None
    assert users.manager_of("ghost") is None
    with pytest.raises(ValueError, match="levels must be at least 1"):
        users.manager_of("r1", levels=0)


def test_hierarchy_survives_a_loop_made_outside_formflow() -> None:
    loop = Hierarchy({"a": "b", "b": "a", "c": "a"})
    assert loop.team("a") == {"a", "b", "c"}
    assert loop.manager_of("a") == "b"
    assert loop.manager_of("a", levels=2) is None  # back at a: the line has no top
    assert loop.manager_of("c", levels=3) is None


# --------------------------------------------------------------------------- tokens


def test_tokens_create_verify_revoke(users: UserService, clock: Clock) -> None:
    users.add("li", roles=["rep"])
    token = users.create_token("li", "  laptop script ")
    assert token.startswith("ff_")
    assert len(token) == 3 + 43  # 32 bytes, urlsafe base64 without padding
    with users.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(users.tokens_table)).all()]
    assert len(rows) == 1
    assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(rows)  # only the hash is stored
    assert rows[0]["label"] == "laptop script"

    assert users.verify_token(token) == users.get("li")
    (info,) = users.tokens("li")
    assert (info.label, info.created_at, info.last_used_at, info.active) == (
        "laptop script",
        T0,
        T0,
        True,
    )
    clock.now = T0 + timedelta(seconds=30)  # touched at most once a minute
    assert users.verify_token(token) is not None
    assert users.tokens("li")[0].last_used_at == T0
    clock.now = T0 + timedelta(minutes=5)
    assert users.verify_token(token) is not None
    assert users.tokens("li")[0].last_used_at == T0 + timedelta(minutes=5)

    for bad in ("", "ff_", token[:-1], token + "x", "Bearer " + token, "ff_" + "a" * 200):
        assert users.verify_token(bad) is None

    users.revoke_token(info.id)
    assert users.verify_token(token) is None
    assert users.tokens("li")[0].revoked_at == T0 + timedelta(minutes=5)
    assert users.tokens("li", include_revoked=False) == []
    users.revoke_token(info.id)  # again: nothing changes
    with pytest.raises(TokenNotFound):
        users.revoke_token(999)


def test_revoke_by_token_and_per_user(users: UserService) -> None:
    users.add("li", roles=["rep"])
    users.add("han", roles=["rep"])
    mine = users.create_token("li")
    theirs = users.create_token("han", "ci")
    assert mine != theirs
    with pytest.raises(TokenNotFound):
        users.revoke_token(theirs, user="li")  # not li's to revoke
    assert users.verify_token(theirs) is not None
    users.revoke_token(mine, user="li")
    assert users.verify_token(mine) is None
    assert [t.label for t in users.tokens("han", include_revoked=False)] == ["ci"]
    with pytest.raises(TokenNotFound):
        users.revoke_token("not-a-token")


def test_tokens_of_inactive_users(users: UserService) -> None:
    users.add("boss", roles=["admin"])
    users.add("li", roles=["rep"])
    token = users.create_token("li")
    users.deactivate("li")
    assert users.verify_token(token) is None
    assert users.tokens("li")[0].revoked_at is not None  # deactivating revokes
    users.activate("li")
    assert users.verify_token(token) is None  # revoked tokens stay revoked
    users.deactivate("li")
    with pytest.raises(UserInvalid) as info:
        users.create_token("li")
    assert info.value.as_dict("en") == {"user": ["user 'li' is inactive"]}
    with pytest.raises(UserNotFound):
        users.create_token("ghost")
    with pytest.raises(UserInvalid):
        users.create_token("boss", "x" * 201)


def test_hash_token() -> None:
    assert hash_token("ff_abc") == hashlib.sha256(b"ff_abc").hexdigest()


# --------------------------------------------------------------------------- first start


def test_ensure_admin(users: UserService) -> None:
    admin, password = users.ensure_admin()
    assert admin.name == "admin"
    assert admin.roles == ("admin",)
    assert password is not None and len(password) >= 12
    assert users.authenticate("admin", password) == admin
    assert users.ensure_admin() == (admin, None)  # only once
    assert len(users.list()) == 1


def test_ensure_admin_with_given_password_and_existing_users(users: UserService) -> None:
    users.add("li", roles=["rep"])  # users but no admin: one is added
    admin, password = users.ensure_admin("given password")
    assert password == "given password"
    assert users.authenticate("admin", "given password") == admin
    users.add("boss", roles=["admin"])
    assert users.ensure_admin() == (users.get("admin"), None)  # the first admin by name


def test_ensure_admin_when_the_name_admin_is_taken_by_a_non_admin(users: UserService) -> None:
    users.add("admin", roles=["rep"])
    with pytest.raises(UserInvalid) as info:
        users.ensure_admin()
    assert info.value.as_dict("en") == {"name": ["user 'admin' already exists"]}


def test_a_duplicate_added_meanwhile_is_still_refused(
    users: UserService, monkeypatch: pytest.MonkeyPatch
) -> None:
    users.add("li", roles=["rep"])
    # as if another process added the same name between the check and the insert
    monkeypatch.setattr(UserService, "_check_name_free", lambda self, conn, name: None)
    with pytest.raises(UserInvalid) as info:
        users.add("li", roles=["rep"])
    assert info.value.as_dict("en") == {"name": ["user 'li' already exists"]}
    assert len(users.list()) == 1


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_recent_users_are_reused_within_the_bound_and_dropped_on_change(
    users: UserService,
) -> None:
    ticks = Ticks()
    web = UserService(users.blueprint, users.schema, users.engine, cache_seconds=5, monotonic=ticks)
    users.add("boss", roles=["admin"])
    users.add("li", roles=["rep"])
    first = web.recent("li")
    assert first is not None and first.active and first.roles == ("rep",)

    # Another process (here: the other service object) deactivates li and changes roles:
    # this process may keep its copy for at most cache_seconds.
    users.set_roles("li", ["manager"])
    users.deactivate("li")
    ticks.now += 4.9
    assert web.recent("li") == first
    ticks.now += 0.1
    fresh = web.recent("li")
    assert fresh is not None and not fresh.active and fresh.roles == ("manager",)

    # A change through the same service counts at once, whatever the clock says.
    assert web.activate("li").active
    assert web.recent("li") == web.find("li")
    web.set_roles("li", ["finance"])
    again = web.recent("li")
    assert again is not None and again.roles == ("finance",)
    web.deactivate("li")
    gone = web.recent("li")
    assert gone is not None and not gone.active

    # Unknown names are remembered too, and a user added here is found at once.
    assert web.recent("newcomer") is None
    web.add("newcomer", roles=["rep"])
    assert web.recent("newcomer") is not None

    # A user deleted by hand disappears within the bound.
    with users.engine.begin() as conn:
        conn.execute(sa.delete(users.schema.users).where(users.schema.users.c.name == "newcomer"))
    ticks.now += 5
    assert web.recent("newcomer") is None


def test_no_user_cache_reads_every_time(users: UserService) -> None:
    ticks = Ticks()
    web = UserService(users.blueprint, users.schema, users.engine, cache_seconds=0, monotonic=ticks)
    users.add("boss", roles=["admin"])
    users.add("li", roles=["rep"])
    assert web.recent("li") is not None
    users.deactivate("li")
    latest = web.recent("li")
    assert latest is not None and not latest.active
