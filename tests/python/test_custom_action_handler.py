"""Custom commands and the custom action handler (`custom_action_handler_url`) through the
official Python SDK against chat-local with its own app: `/ticket …` is POSTed signed to the
handler, whose answer is shown to the author only (`ephemeral`, acted on with
`run_message_action`), sent to the channel (any other type, with `command` and custom fields),
or the author's error; a failing handler is an error and nothing is sent."""

import json
import uuid

import pytest
from stream_chat.base.exceptions import StreamAPIException

from conftest import JsonEndpoint, private_app


def ticket_handler(doc):
    """`/ticket …`: asks to confirm (ephemeral with actions), opens on confirm, cancels with no
    message, opens at once for "now", refuses "bad", fails for "down"."""
    message, form = doc["message"], doc.get("form_data") or {}
    args = message.get("args", "")
    if "down" in args:
        return 500, None
    if form.get("action") == "confirm":
        return 200, {"message": {"type": "regular", "text": f"Ticket opened: {args}", "ticket_id": 7}}
    if form.get("action") == "cancel":
        return 200, {}
    if "bad" in args:
        return 200, {"message": {"type": "error", "text": "no such ticket"}}
    if "now" in args:
        return 200, {"message": {"type": "regular", "text": f"Opened right away: {args}"}}
    actions = [
        {"name": "action", "text": "Confirm", "type": "button", "value": "confirm"},
        {"name": "action", "text": "Cancel", "type": "button", "value": "cancel"},
    ]
    return 200, {
        "message": {
            "type": "ephemeral",
            "text": f"Open a ticket about {args!r}?",
            "attachments": [{"type": "form", "actions": actions}],
        }
    }


@pytest.fixture(scope="module")
def app():
    handler = JsonEndpoint(ticket_handler)
    with private_app("cc") as client:
        client.update_app_settings(custom_action_handler_url=handler.url)
        client.create_command({"name": "ticket", "description": "Open a support ticket", "args": "[subject]"})
        client.update_channel_type("messaging", commands=["all", "ticket"])
        yield client, handler
    handler.close()


@pytest.fixture
def channel(app):
    client, _ = app
    ann, bob = f"ann-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    client.upsert_users([{"id": ann}, {"id": bob}])
    ch = client.channel("messaging", f"cc-{uuid.uuid4().hex[:8]}", {"members": [ann, bob]})
    ch.create(ann)
    return ch, ann, bob


def stored(ch):
    return ch.query(messages={"limit": 50})["messages"]


def act(client, mid, value, user):
    return client.run_message_action(mid, {"form_data": {"action": value}, "user_id": user})


def test_an_ephemeral_answer_is_the_authors_until_confirmed(app, channel):
    client, handler = app
    ch, ann, bob = channel
    shown = ch.send_message({"text": "/ticket printer jam"}, ann)["message"]
    assert shown["type"] == "ephemeral" and shown["command"] == "ticket"
    assert shown["text"] == "Open a ticket about 'printer jam'?"
    assert [a["value"] for a in shown["attachments"][0]["actions"]] == ["confirm", "cancel"]
    body, headers = handler.calls[-1]
    assert client.verify_webhook(body, headers["X-Signature"])
    sent = json.loads(body)
    assert sent["message"]["command"] == "ticket" and sent["message"]["args"] == "printer jam"
    assert sent["user"]["id"] == ann and sent["channel"]["cid"] == ch.cid and sent["form_data"] == {}
    assert stored(ch) == []
    # Only the author acts on it.
    with pytest.raises(StreamAPIException) as other:
        act(client, shown["id"], "confirm", bob)
    assert other.value.status_code == 403
    opened = act(client, shown["id"], "confirm", ann)["message"]
    assert json.loads(handler.calls[-1][0])["form_data"] == {"action": "confirm"}
    assert opened["type"] == "regular" and opened["id"] == shown["id"]
    assert opened["text"] == "Ticket opened: printer jam"
    assert opened["command"] == "ticket" and opened["ticket_id"] == 7
    assert [m["text"] for m in stored(ch)] == ["Ticket opened: printer jam"]
    with pytest.raises(StreamAPIException) as gone:
        act(client, shown["id"], "confirm", ann)
    assert gone.value.status_code in (400, 404)


def test_an_answer_without_a_message_cancels(app, channel):
    client, _ = app
    ch, ann, _ = channel
    shown = ch.send_message({"text": "/ticket noise"}, ann)["message"]
    assert act(client, shown["id"], "cancel", ann).get("message") is None
    with pytest.raises(StreamAPIException) as gone:
        act(client, shown["id"], "confirm", ann)
    assert gone.value.status_code == 404
    assert stored(ch) == []


def test_regular_and_error_answers(app, channel):
    _, _ = app
    ch, ann, _ = channel
    now = ch.send_message({"text": "/ticket now please"}, ann)["message"]
    assert now["type"] == "regular" and now["text"] == "Opened right away: now please"
    refused = ch.send_message({"text": "/ticket bad one"}, ann)["message"]
    assert refused["type"] == "error" and refused["text"] == "no such ticket"
    assert [m["text"] for m in stored(ch)] == ["Opened right away: now please"]


def test_a_failing_handler_is_an_error_and_nothing_is_sent(app, channel):
    ch, ann, _ = channel
    with pytest.raises(StreamAPIException) as failed:
        ch.send_message({"text": "/ticket down again"}, ann)
    assert failed.value.status_code == 400
    assert "custom action handler" in str(failed.value)
    assert stored(ch) == []
