"""Channel types through the official Python SDK: built-ins, create, get, list, update, delete."""

import uuid

import pytest
from stream_chat.base.exceptions import StreamAPIException


def test_builtin_types_exist_with_their_defaults(client):
    types = client.list_channel_types()["channel_types"]
    for name in ("messaging", "livestream", "team", "commerce", "gaming"):
        assert name in types
    assert types["livestream"]["mutes"] is True
    messaging = client.get_channel_type("messaging")
    assert messaging["name"] == "messaging"
    assert messaging["typing_events"] is True
    assert "permissions" in messaging
    assert "grants" in messaging


def test_create_update_delete(client):
    name = "ct" + uuid.uuid4().hex[:8]
    created = client.create_channel_type({"name": name, "typing_events": False, "max_message_length": 1000})
    assert created["name"] == name
    assert created["typing_events"] is False
    assert created["max_message_length"] == 1000
    # custom types start from messaging's grants
    assert created["grants"]["channel_member"] == client.get_channel_type("messaging")["grants"]["channel_member"]
    updated = client.update_channel_type(name, commands=["ban", "unban"], reminders=True)
    assert updated["commands"] == ["ban", "unban"]
    assert updated["reminders"] is True
    assert updated["typing_events"] is False
    got = client.get_channel_type(name)
    assert got["reminders"] is True
    client.delete_channel_type(name)
    with pytest.raises(StreamAPIException) as err:
        client.get_channel_type(name)
    assert err.value.error_code == 16


def test_grants_update_clear_and_reset(client):
    name = "gr" + uuid.uuid4().hex[:8]
    client.create_channel_type({"name": name})
    updated = client.update_channel_type(name, grants={"user": ["read-channel"], "guest": []})
    assert updated["grants"]["user"] == ["read-channel"]
    assert updated["grants"]["guest"] == []
    reset = client.update_channel_type(name, grants=None)
    assert reset["grants"] == client.get_channel_type("messaging")["grants"]
    with pytest.raises(StreamAPIException):
        client.update_channel_type(name, grants={"user": ["no-such-permission"]})
    client.delete_channel_type(name)


@pytest.mark.parametrize(
    "config",
    [
        {"max_message_length": 20001},
        {"partition_size": 5},
        {"automod": "sometimes"},
    ],
)
def test_invalid_channel_type_settings_are_refused(client, config):
    name = "bad" + uuid.uuid4().hex[:8]
    with pytest.raises(StreamAPIException) as err:
        client.create_channel_type({"name": name, **config})
    assert err.value.error_code == 4


def test_duplicate_and_missing_types(client):
    with pytest.raises(StreamAPIException):
        client.create_channel_type({"name": "messaging"})
    with pytest.raises(StreamAPIException) as err:
        client.delete_channel_type("nope" + uuid.uuid4().hex[:6])
    assert err.value.error_code == 16
