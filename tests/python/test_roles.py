"""Roles and permissions through the official Python SDK."""

import uuid

import pytest
from stream_chat.base.exceptions import StreamAPIException


def role_names(client):
    return [r["name"] for r in client.list_roles()["roles"]]


def test_builtin_roles_are_listed(client):
    names = role_names(client)
    for r in ("user", "guest", "anonymous", "admin", "moderator", "channel_member", "channel_moderator"):
        assert r in names


def test_custom_role_lifecycle(client):
    name = "role" + uuid.uuid4().hex[:8]
    client.create_role(name)
    assert name in role_names(client)
    with pytest.raises(StreamAPIException):
        client.create_role(name)
    client.delete_role(name)
    assert name not in role_names(client)


def test_role_in_use_cannot_be_deleted(client, user_id):
    name = "inuse" + uuid.uuid4().hex[:6]
    client.create_role(name)
    client.upsert_user({"id": user_id, "role": name})
    with pytest.raises(StreamAPIException):
        client.delete_role(name)
    client.update_user_partial({"id": user_id, "set": {"role": "user"}})
    ct = "rg" + uuid.uuid4().hex[:8]
    client.create_channel_type({"name": ct})
    client.update_channel_type(ct, grants={name: ["read-channel"]})
    with pytest.raises(StreamAPIException):
        client.delete_role(name)
    client.delete_channel_type(ct)
    client.delete_role(name)


def test_builtin_role_cannot_be_deleted(client):
    with pytest.raises(StreamAPIException):
        client.delete_role("admin")


def test_permissions_are_listed_with_their_fields(client):
    perms = client.list_permissions()["permissions"]
    assert len(perms) > 20
    by_id = {p["id"]: p for p in perms}
    p = by_id["update-message-owner"]
    assert p["owner"] is True
    for field in ("id", "name", "description", "action", "owner", "same_team"):
        assert field in p
    one = client.get_permission("create-channel")["permission"]
    assert one["id"] == "create-channel"
    with pytest.raises(StreamAPIException) as err:
        client.get_permission("nope")
    assert err.value.error_code == 16
