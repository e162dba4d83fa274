"""The before-send hook (`before_message_send_hook_url`) through the official Python SDK against
chat-local with its own app: the handler gets each new message signed (the SDK's
`verify_webhook` accepts it) with its author and channel, and may change it (text, custom
fields), reject it (`type: error`: the author gets the error, nothing is stored), or answer
nothing; a handler that errs or is too slow lets the message through unchanged."""

import json
import time
import uuid

import pytest

from conftest import JsonEndpoint, private_app


def before_send(doc):
    """Redacts "secret", rejects "forbidden", fails on "boom", answers "slow" after 3 s, and
    answers nothing otherwise."""
    message = doc["message"]
    text = message["text"]
    if "boom" in text:
        return 500, None
    if "slow" in text:
        time.sleep(3)
    if "secret" in text:
        return 200, {"message": {**message, "text": text.replace("secret", "[redacted]"), "redacted": True}}
    if "forbidden" in text:
        return 200, {"message": {"type": "error", "text": "This message is not allowed here"}}
    return 200, {}


@pytest.fixture(scope="module")
def app():
    handler = JsonEndpoint(before_send)
    with private_app("bs") as client:
        client.update_app_settings(before_message_send_hook_url=handler.url)
        yield client, handler
    handler.close()


@pytest.fixture
def channel(app):
    client, _ = app
    ann, bob = f"ann-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    client.upsert_users([{"id": ann}, {"id": bob}])
    ch = client.channel("messaging", f"bs-{uuid.uuid4().hex[:8]}", {"members": [ann, bob]})
    ch.create(ann)
    return ch, ann


def stored_texts(ch):
    return [m["text"] for m in ch.query(messages={"limit": 50})["messages"]]


def test_the_handler_gets_each_message_signed_with_its_author_and_channel(app, channel):
    client, handler = app
    ch, ann = channel
    sent = ch.send_message({"text": "hello there"}, ann)["message"]
    assert sent["text"] == "hello there" and sent["type"] == "regular"
    body, headers = handler.calls[-1]
    assert client.verify_webhook(body, headers["X-Signature"])
    assert headers["X-Api-Key"] == client.api_key
    doc = json.loads(body)
    assert doc["message"]["text"] == "hello there"
    assert doc["user"]["id"] == ann
    assert doc["channel"]["cid"] == ch.cid
    assert doc["request_info"]["type"] == "server"


def test_a_changed_message_is_stored_as_changed(app, channel):
    ch, ann = channel
    sent = ch.send_message({"text": "my secret plan"}, ann)["message"]
    assert sent["text"] == "my [redacted] plan"
    assert sent["redacted"] is True
    assert "my [redacted] plan" in stored_texts(ch)
    assert "my secret plan" not in stored_texts(ch)


def test_a_rejected_message_answers_an_error_and_is_not_stored(app, channel):
    ch, ann = channel
    refused = ch.send_message({"text": "something forbidden"}, ann)["message"]
    assert refused["type"] == "error"
    assert refused["text"] == "This message is not allowed here"
    assert "something forbidden" not in stored_texts(ch)


def test_a_failing_or_slow_handler_lets_the_message_through(app, channel):
    # (1.5 s by default)
    ch, ann = channel
    failed = ch.send_message({"text": "boom goes the handler"}, ann)["message"]
    assert failed["type"] == "regular" and failed["text"] == "boom goes the handler"
    started = time.monotonic()
    slow = ch.send_message({"text": "slow secret"}, ann)["message"]
    took = time.monotonic() - started
    # Fails open after 1.5 s: unchanged (the redaction came too late).
    assert slow["text"] == "slow secret"
    assert 1.2 < took < 2.9, took
    assert {"boom goes the handler", "slow secret"} <= set(stored_texts(ch))


def test_the_app_sets_how_long_the_handler_has(app, channel):
    client, _ = app
    ch, ann = channel
    client.update_app_settings(before_message_send_hook_attempt_timeout_ms=300)
    try:
        started = time.monotonic()
        slow = ch.send_message({"text": "slow secret again"}, ann)["message"]
        assert slow["text"] == "slow secret again"
        assert time.monotonic() - started < 1.2
    finally:
        client.update_app_settings(before_message_send_hook_attempt_timeout_ms=0)
    with pytest.raises(Exception):
        client.update_app_settings(before_message_send_hook_attempt_timeout_ms=5001)
