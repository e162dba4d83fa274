"""Push devices through the official Python SDK (`add_device`, `get_devices`, `delete_device`)
and raw HTTP as the JS client sends them: registering again has no effect, a user keeps the 25
newest, `devices` in the connection's `me`, a connect's `device` registered, devices gone with
a hard-deleted user; who may manage whose (server, the user, another user, guest, anonymous);
bounded input; Stream's error envelope."""

import json
import time
import urllib.parse
import uuid

import pytest
import websocket
from stream_chat.base.exceptions import StreamAPIException

ENVELOPE = {"code", "message", "StatusCode", "duration", "more_info"}


def uid(prefix="dev"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def call(server, method, token, auth_type="jwt", **kw):
    return server.request(method, "/devices", token=token, auth_type=auth_type, **kw)


def refused(resp, status):
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert ENVELOPE <= set(body), body
    assert "devices#" not in resp.text and "::" not in resp.text, resp.text
    return body


@pytest.fixture
def users(client):
    ids = [uid("a"), uid("b")]
    client.upsert_users([{"id": i} for i in ids])
    return ids


def test_sdk_add_list_delete(client, users):
    a, _ = users
    assert client.get_devices(a)["devices"] == []
    client.add_device("token-apn-" + a, "apn", a)  # push_provider_name sent as null
    client.add_device("token-fcm-" + a, "firebase", a)
    client.add_device("token-apn-" + a, "apn", a)  # again: no effect
    devices = client.get_devices(a)["devices"]
    assert [(d["id"], d["push_provider"], d["user_id"]) for d in devices] == [
        ("token-apn-" + a, "apn", a),
        ("token-fcm-" + a, "firebase", a),
    ]
    assert all(d["created_at"] and d["disabled"] is False for d in devices)
    client.delete_device("token-apn-" + a, a)
    assert [d["id"] for d in client.get_devices(a)["devices"]] == ["token-fcm-" + a]
    with pytest.raises(StreamAPIException) as gone:
        client.delete_device("token-apn-" + a, a)
    assert gone.value.status_code == 404


def test_users_manage_only_their_own_devices(server, client, users):
    a, b = users
    ta, tb = server.user_token(a), server.user_token(b)
    assert call(server, "POST", ta, json={"id": "own-" + a, "push_provider": "firebase", "voip_token": True}).status_code in (200, 201)
    listed = call(server, "GET", ta).json()["devices"]
    assert [(d["id"], d["voip"]) for d in listed] == [("own-" + a, True)]
    # Another user's: refused to list, add or delete; their own list does not show it.
    refused(call(server, "GET", tb, params={"user_id": a}), 403)
    refused(call(server, "POST", tb, json={"id": "x", "push_provider": "apn", "user_id": a}), 403)
    refused(call(server, "DELETE", tb, params={"id": "own-" + a, "user_id": a}), 403)
    assert call(server, "GET", tb).json()["devices"] == []
    refused(call(server, "DELETE", tb, params={"id": "own-" + a}), 404)
    # Anonymous callers have no devices.
    refused(call(server, "GET", None, auth_type="anonymous"), 403)
    refused(call(server, "POST", None, auth_type="anonymous", json={"id": "x", "push_provider": "apn"}), 403)
    # The server must name the user.
    refused(call(server, "GET", client.auth_token), 400)
    # The owner deletes it.
    assert call(server, "DELETE", ta, params={"id": "own-" + a}).status_code == 200
    assert call(server, "GET", ta).json()["devices"] == []


def test_guests_register_their_own(server):
    r = server.request("POST", "/guest", auth_type="anonymous", json={"user": {"id": uid("guest")}})
    assert r.status_code in (200, 201), r.text
    token, guest = r.json()["access_token"], r.json()["user"]["id"]
    assert call(server, "POST", token, json={"id": "g-" + guest, "push_provider": "huawei"}).status_code in (200, 201)
    assert [d["id"] for d in call(server, "GET", token).json()["devices"]] == ["g-" + guest]


def test_input_is_checked(server, client, users):
    a, _ = users
    ta = server.user_token(a)
    for body, field in [
        ({"push_provider": "apn"}, "id"),
        ({"id": "x" * 256, "push_provider": "apn"}, "id"),
        ({"id": "t", "push_provider": "gcm"}, "push_provider"),
        ({"id": "t"}, "push_provider"),
        ({"id": "t", "push_provider": "apn", "push_provider_name": "n" * 37}, "push_provider_name"),
        ({"id": "t", "push_provider": "apn", "hardware_id": "h" * 256}, "hardware_id"),
    ]:
        assert refused(call(server, "POST", ta, json=body), 400)["code"] == 4, body
    # A provider name must name a configured provider: none is.
    body = refused(call(server, "POST", ta, json={"id": "t", "push_provider": "apn", "push_provider_name": "prod"}), 400)
    assert "prod" in body["message"]
    refused(call(server, "DELETE", ta, params={}), 400)
    with pytest.raises(StreamAPIException) as missing:
        client.add_device("t", "apn", uid("nobody"))
    assert missing.value.status_code == 404


def test_a_user_keeps_the_25_newest(client, users):
    a, _ = users
    for i in range(27):
        client.add_device(f"d{i:02}-{a}", "firebase", a)
        time.sleep(0.002)
    kept = [d["id"] for d in client.get_devices(a)["devices"]]
    assert len(kept) == 25
    assert f"d00-{a}" not in kept and f"d01-{a}" not in kept and f"d26-{a}" in kept


def test_me_lists_devices_and_a_connect_registers_one(server, client, users):
    a, _ = users
    client.add_device("me-" + a, "apn", a)
    ws, hello = server.connect_socket(a)
    ws.close()
    assert [d["id"] for d in hello["me"]["devices"]] == ["me-" + a], hello["me"].get("devices")
    # The JS client's setLocalDevice sends the device with the connect payload.
    payload = {"user_id": a, "user_details": {"id": a}, "device": {"id": "local-" + a, "push_provider": "firebase"}}
    query = urllib.parse.urlencode(
        {"json": json.dumps(payload), "api_key": server.api_key, "authorization": server.user_token(a), "stream-auth-type": "jwt"}
    )
    ws = websocket.create_connection(server.url.replace("http", "ws", 1) + "/connect?" + query, timeout=5)
    try:
        assert json.loads(ws.recv())["type"] == "health.check"
    finally:
        ws.close()
    assert sorted(d["id"] for d in client.get_devices(a)["devices"]) == sorted(["me-" + a, "local-" + a])


def test_devices_go_with_a_hard_deleted_user(client, users):
    a, _ = users
    client.add_device("del-" + a, "apn", a)
    client.delete_user(a, hard_delete=True)
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            client.upsert_user({"id": a})
            break
        except StreamAPIException:
            time.sleep(0.1)
    assert client.get_devices(a)["devices"] == []


def test_check_push_renders_the_standard_payload(server, client, users):
    """check_push as the SDK calls it: a /giphy command message, skip_devices, and a rendered
    payload; with devices, each says that nothing was sent; server-side only."""
    a, b = users
    channel = client.channel("messaging", uid("push"), {"members": [a, b]})
    channel.create(a)
    giphy = {"id": uid("m"), "text": "/giphy wave"}
    channel.send_message(giphy, a)
    r = client.check_push({"message_id": giphy["id"], "skip_devices": True, "user_id": b})
    assert r["rendered_message"] == {
        "sender": "stream.chat", "type": "message.new", "version": "v2", "message_id": giphy["id"],
        "id": giphy["id"], "channel_type": "messaging", "channel_id": channel.id, "cid": channel.cid, "receiver_id": b,
    }
    assert r["skip_devices"] is True and r["event_type"] == "message.new"
    # Without devices: a general error; with them: each device reports.
    sent = channel.send_message({"text": "hello"}, a)["message"]
    r = client.check_push({"user_id": b, "event_type": "reaction.new"})
    assert r["rendered_message"]["id"] == sent["id"] and r["rendered_message"]["type"] == "reaction.new"
    assert r["general_errors"] and r["device_errors"] == {}
    client.add_device("push-" + b, "firebase", b)
    r = client.check_push({"message_id": sent["id"], "user_id": b})
    assert r["device_errors"]["push-" + b]["provider"] == "firebase"
    assert "no enabled push provider" in r["device_errors"]["push-" + b]["error_message"]
    r = client.check_push({"message_id": sent["id"], "user_id": b, "push_provider_type": "apn"})
    assert r["device_errors"] == {}
    # Refusals.
    for body, status in [
        ({"message_id": "nope", "user_id": b, "skip_devices": True}, 404),
        ({"message_id": sent["id"], "skip_devices": True}, 400),
        ({"message_id": sent["id"], "user_id": uid("nobody")}, 404),
        ({"message_id": sent["id"], "user_id": b, "event_type": "channel.created"}, 400),
        ({"message_id": sent["id"], "user_id": b, "push_provider_type": "gcm"}, 400),
        ({"message_id": sent["id"], "user_id": b, "apn_template": "{}"}, 400),
    ]:
        with pytest.raises(StreamAPIException) as e:
            client.check_push(body)
        assert e.value.status_code == status, (body, e.value.response_text)
    guest = server.request("POST", "/guest", auth_type="anonymous", json={"user": {"id": uid("guest")}}).json()["access_token"]
    for token, auth_type in ((server.user_token(b), "jwt"), (server.user_token(a), "jwt"), (guest, "jwt"), (None, "anonymous")):
        r = server.request("POST", "/check_push", token=token, auth_type=auth_type, json={"user_id": b, "skip_devices": True})
        refused(r, 403)
