"""A restart of chat-local on the same data directory keeps users, settings, roles and
channel types; a clean stop loses nothing."""

import uuid


def test_restart_keeps_everything(restartable):
    srv = restartable.start()
    client = srv.client()
    tag = uuid.uuid4().hex[:8]
    client.upsert_users([{"id": f"keep-{tag}-{i}", "n": i} for i in range(20)])
    client.update_app_settings(reminders_interval=777, enforce_unique_usernames="team")
    client.create_role(f"role{tag}")
    client.create_channel_type({"name": f"ct{tag}", "typing_events": False})
    client.update_channel_type("messaging", grants={"guest": []})
    srv.stop()

    srv.start()
    client = srv.client()
    users = client.query_users({"id": {"$in": [f"keep-{tag}-{i}" for i in range(20)]}}, {"n": 1})["users"]
    assert [u["n"] for u in users] == list(range(20))
    app = client.get_app_settings()["app"]
    assert app["reminders_interval"] == 777
    assert app["enforce_unique_usernames"] == "team"
    assert f"role{tag}" in [r["name"] for r in client.list_roles()["roles"]]
    assert client.get_channel_type(f"ct{tag}")["typing_events"] is False
    assert client.get_channel_type("messaging")["grants"]["guest"] == []


def test_generated_credentials_are_printed_and_kept(tmp_path):
    from conftest import LocalServer

    srv = LocalServer(str(tmp_path), None, None).start()
    try:
        key, secret = srv.printed["api_key"], srv.printed["api_secret"]
        assert len(key) >= 8 and len(secret) >= 32
        srv.api_key, srv.api_secret = key, secret
        srv.client().upsert_user({"id": "kept"})
        srv.stop()
        srv.api_key = None
        srv.start()
        assert (srv.printed["api_key"], srv.printed["api_secret"]) == (key, secret)
        srv.api_key, srv.api_secret = key, secret
        assert srv.client().query_users({"id": "kept"})["users"][0]["id"] == "kept"
    finally:
        srv.stop()


def test_in_memory_keeps_nothing(tmp_path):
    from conftest import LocalServer

    srv = LocalServer(str(tmp_path), "memkey", "memsecret-0123456789", extra_args=["--in-memory"]).start()
    try:
        assert srv.printed["data dir"] == "(in memory)"
        srv.client().upsert_user({"id": "ephemeral"})
        assert len(srv.client().query_users({"id": "ephemeral"})["users"]) == 1
        srv.stop()
        srv.start()
        assert srv.client().query_users({"id": "ephemeral"})["users"] == []
        assert not (tmp_path / "chat.db").exists()
    finally:
        srv.stop()
