"""Push preferences (`POST /push_preferences`, raw HTTP as the JS client's `setPushPreferences`
sends it): a user's own and per channel, `default` and `remove_disable` clearing them, `me`
showing them on connect; who may set whose (server, the user, another user, guest, anonymous);
bounded and checked input; Stream's error envelope."""

import uuid

import pytest

import envelope


def uid(prefix="pp"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def call(server, body, token=None, auth_type="jwt"):
    return server.request("POST", "/push_preferences", token=token, auth_type=auth_type, json=body)


@pytest.fixture
def setup(server, client):
    a, b = uid("a"), uid("b")
    client.upsert_users([{"id": a}, {"id": b}])
    channel = client.channel("messaging", uid("room"), {"members": [a, b], "created_by_id": a})
    channel.create(a)
    return a, b, channel.cid


def test_own_and_channel_preferences(server, client, setup):
    a, _, cid = setup
    r = call(server, {"preferences": [
        {"chat_level": "mentions", "disabled_until": "2099-01-01T00:00:00Z"},
        {"channel_cid": cid, "chat_level": "none"},
    ]}, token=server.user_token(a))
    assert r.status_code in (200, 201), r.text
    body = r.json()
    mine = body["user_preferences"][a]
    assert mine["chat_level"] == "mentions" and mine["disabled_until"].startswith("2099-01-01T00:00:00"), mine
    assert body["user_channel_preferences"] == {a: {cid: {"chat_level": "none"}}}
    # `default` and `remove_disable` clear what was set; the server sets anyone's.
    r = call(server, {"preferences": [{"user_id": a, "chat_level": "default", "remove_disable": True}]}, token=client.auth_token)
    assert r.status_code in (200, 201), r.text
    assert r.json()["user_preferences"] == {a: {}}
    call(server, {"preferences": [{"user_id": a, "chat_level": "all"}]}, token=client.auth_token)
    # `me` on connect carries the user's own preferences.
    ws, hello = server.connect_socket(a)
    ws.close()
    me = hello["me"]
    assert me["push_preferences"] == {"chat_level": "all"}


def test_who_may_set_whose(server, client, setup):
    a, b, cid = setup
    mine = {"preferences": [{"chat_level": "none"}]}
    for_a = {"preferences": [{"user_id": a, "chat_level": "none"}]}
    # Another user, for a: refused, nothing changes.
    envelope.assert_error(call(server, for_a, token=server.user_token(b)), 403, 17)
    # A guest sets its own only.
    g = server.request("POST", "/guest", auth_type="anonymous", json={"user": {"id": uid("guest")}})
    assert g.status_code in (200, 201), g.text
    guest_token, guest = g.json()["access_token"], g.json()["user"]["id"]
    r = call(server, mine, token=guest_token)
    assert r.status_code in (200, 201) and guest in r.json()["user_preferences"], r.text
    envelope.assert_error(call(server, for_a, token=guest_token), 403, 17)
    # Anonymous callers have none.
    envelope.assert_error(call(server, mine, auth_type="anonymous"), 403, 17)
    # The server must name the user.
    envelope.assert_error(call(server, mine, token=client.auth_token), 400, 4)
    r = call(server, for_a, token=client.auth_token)
    assert r.status_code in (200, 201) and r.json()["user_preferences"][a] == {"chat_level": "none"}, r.text
    # b's own call never touched a.
    r = call(server, {"preferences": [{"user_id": a}]}, token=client.auth_token)
    assert r.json()["user_preferences"][a] == {"chat_level": "none"}


def test_input_is_checked(server, client, setup):
    a, b, cid = setup
    token = server.user_token(a)
    outsider = uid("out")
    client.upsert_user({"id": outsider})
    for body, status in [
        ({}, 400),
        ({"preferences": []}, 400),
        ({"preferences": [{"chat_level": "loud"}]}, 400),
        ({"preferences": [{"disabled_until": "tomorrow"}]}, 400),
        ({"preferences": [{"call_level": "none"}]}, 400),
        ({"preferences": [{"chat_preferences": {"thread_replies": "none"}}]}, 400),
        ({"preferences": [{"chat_level": "all"}] * 101}, 400),
        ({"preferences": [{"channel_cid": "messaging:" + uid("nope"), "chat_level": "none"}]}, 404),
    ]:
        envelope.assert_error(call(server, body, token=token), status)
    # Only a member sets a channel's preference; one bad entry changes nothing.
    envelope.assert_error(call(server, {"preferences": [{"channel_cid": cid, "chat_level": "none"}]}, token=server.user_token(outsider)), 400, 4)
    envelope.assert_error(call(server, {"preferences": [{"chat_level": "none"}, {"chat_level": "loud"}]}, token=token), 400, 4)
    r = call(server, {"preferences": [{"user_id": a}]}, token=client.auth_token)
    assert r.json()["user_preferences"][a] == {}, r.text
    envelope.assert_error(call(server, {"preferences": [{"user_id": uid("ghost"), "chat_level": "none"}]}, token=client.auth_token), 404)
