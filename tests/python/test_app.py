"""App settings through the official Python SDK: round trip, validation, rate-limit headers."""

import pytest
from stream_chat.base.exceptions import StreamAPIException


def test_get_app_has_exactly_app_and_duration(client):
    resp = client.get_app_settings()
    assert set(resp.keys()) == {"app", "duration"}
    app = resp["app"]
    assert app["permission_version"] == "v2"
    assert app["event_hooks"] == []
    assert "messaging" in app["channel_configs"]
    assert "admin" in app["grants"]


def test_rate_limit_headers_are_reported(client):
    resp = client.get_app_settings()
    limits = resp.rate_limit()
    assert limits is not None
    assert limits.limit > 0 and limits.remaining > 0


def test_settings_round_trip(client):
    hooks = [
        {"hook_type": "webhook", "webhook_url": "https://example.com/hook", "event_types": ["message.new"], "enabled": True},
        {"hook_type": "sqs", "sqs_queue_url": "https://sqs.us-east-1.amazonaws.com/1/q", "sqs_auth_type": "keys", "sqs_key": "k", "sqs_secret": "s"},
    ]
    client.update_app_settings(
        reminders_interval=120,
        enforce_unique_usernames="no",
        auto_translation_enabled=True,
        user_response_time_enabled=True,
        file_upload_config={"allowed_file_extensions": [".csv"], "size_limit": 1000},
        image_upload_config={"blocked_mime_types": ["image/gif"]},
        before_message_send_hook_url="https://example.com/before",
        custom_action_handler_url="https://example.com/action",
        sqs_url="https://sqs.us-east-1.amazonaws.com/1/legacy",
        sqs_key="key",
        sqs_secret="secret",
        sns_topic_arn="arn:aws:sns:us-east-1:1:topic",
        event_hooks=hooks,
    )
    app = client.get_app_settings()["app"]
    assert app["reminders_interval"] == 120
    assert app["auto_translation_enabled"] is True
    assert app["user_response_time_enabled"] is True
    assert app["file_upload_config"]["allowed_file_extensions"] == [".csv"]
    assert app["file_upload_config"]["size_limit"] == 1000
    assert app["image_upload_config"]["blocked_mime_types"] == ["image/gif"]
    assert app["before_message_send_hook_url"] == "https://example.com/before"
    assert app["sns_topic_arn"] == "arn:aws:sns:us-east-1:1:topic"
    assert [h["hook_type"] for h in app["event_hooks"]] == ["webhook", "sqs"]
    assert all(len(h["id"]) == 36 for h in app["event_hooks"])
    client.update_app_settings(event_hooks=[], reminders_interval=300, auto_translation_enabled=False)
    app = client.get_app_settings()["app"]
    assert app["event_hooks"] == []
    assert app["reminders_interval"] == 300


@pytest.mark.parametrize(
    "settings",
    [
        {"reminders_interval": 59},
        {"reminders_interval": 86401},
        {"enforce_unique_usernames": "galaxy"},
        {"event_hooks": [{"hook_type": "carrier-pigeon"}]},
        {"event_hooks": [{"hook_type": "webhook"}]},
        {"file_upload_config": {"allowed_mime_types": ["nonsense"]}},
        {"no_such_setting": True},
    ],
)
def test_invalid_settings_are_refused_with_input_error(client, settings):
    before = client.get_app_settings()["app"]
    with pytest.raises(StreamAPIException) as err:
        client.update_app_settings(**settings)
    assert err.value.error_code == 4
    assert err.value.status_code == 400
    after = client.get_app_settings()["app"]
    assert {k: v for k, v in after.items() if k != "channel_configs"} == {k: v for k, v in before.items() if k != "channel_configs"}


def test_app_grants_update_and_reset(client):
    client.update_app_settings(grants={"user": ["search-user"]})
    assert client.get_app_settings()["app"]["grants"]["user"] == ["search-user"]
    client.update_app_settings(grants=None)
    default_user = client.get_app_settings()["app"]["grants"]["user"]
    assert "search-user" in default_user and len(default_user) > 1
