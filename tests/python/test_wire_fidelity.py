"""Wire fidelity through the official Python SDK (and raw HTTP with hand-signed user tokens
where a reader's view matters): what each read says about the reader, sort orders with missing
values, counters that go down, response shapes as Stream's OpenAPI states them, compression,
capabilities that name only what exists, and settings that are either honoured or refused.

Tests are named by the item of the fidelity brief they specify (test_<item>_...)."""

import gzip
import json
import time
import uuid

import jwt
import pytest
import requests
from stream_chat.base.exceptions import StreamAPIException


def uid(prefix="u"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_users(client, *prefixes, **fields):
    ids = [uid(p) for p in prefixes]
    client.upsert_users([{"id": i, **fields} for i in ids])
    return ids


def send(ch, user, text, **extra):
    return ch.send_message({"text": text, **extra}, user)["message"]


def ok(resp, what):
    assert resp.status_code == 200, f"{what}: {resp.status_code} {resp.text[:500]}"
    return resp.json()


def find(messages, message_id, where):
    for m in messages:
        if m["id"] == message_id:
            return m
    pytest.fail(f"{where}: message {message_id} is not in the response ({[m['id'] for m in messages]})")


def own_types(message, where):
    assert "own_reactions" in message, f"{where}: no own_reactions on message {message['id']}"
    return sorted(r["type"] for r in message["own_reactions"])


def reads(state):
    return {r["user"]["id"]: r for r in state.get("read", [])}


def api_code(excinfo):
    return excinfo.value.error_code


# --- 11. own_reactions on reads are the reader's own -------------------------------------


def reads_as(server, token, ch, parent, reply, word):
    """Every read that returns the parent (or the reply), as the holder of `token` sees it."""
    path = f"/channels/{ch.channel_type}/{ch.id}"
    seen = {}
    body = ok(server.request("GET", f"/messages/{parent['id']}", token=token), "get message")
    seen["get message"] = body["message"]
    state = ok(
        server.request("POST", path + "/query", token=token, json={"state": True, "messages": {"limit": 20}}),
        "channel query",
    )
    seen["channel query messages"] = find(state["messages"], parent["id"], "channel query messages")
    seen["channel query pinned_messages"] = find(state["pinned_messages"], parent["id"], "channel state pinned_messages")
    body = ok(
        server.request(
            "POST",
            "/channels",
            token=token,
            json={"filter_conditions": {"cid": ch.cid}, "sort": [], "state": True, "message_limit": 20},
        ),
        "query channels",
    )
    assert len(body["channels"]) == 1, body
    seen["query channels"] = find(body["channels"][0]["messages"], parent["id"], "query channels")
    body = ok(server.request("GET", f"/messages/{parent['id']}/replies", token=token), "replies")
    seen["replies"] = find(body["messages"], reply["id"], "replies")
    payload = json.dumps({"filter_conditions": {"cid": ch.cid}, "query": word, "limit": 10})
    body = ok(server.request("GET", "/search", token=token, params={"payload": payload}), "search")
    seen["search"] = find([r["message"] for r in body["results"]], parent["id"], "search")
    body = ok(
        server.request("GET", path + "/pinned_messages", token=token, params={"payload": json.dumps({"limit": 10})}),
        "pinned messages",
    )
    seen["pinned messages"] = find(body["messages"], parent["id"], "pinned messages")
    return seen


def test_11_own_reactions_on_every_read_are_the_readers_own(server, client):
    reactor, other, reader = make_users(client, "own-reactor", "own-other", "own-reader")
    word = "fidelity" + uuid.uuid4().hex[:8]
    ch = client.channel("messaging", uid("own"), {"members": [reactor, other, reader]})
    ch.create(other)
    parent = send(ch, other, f"parent {word}")
    reply = send(ch, other, "a reply", parent_id=parent["id"])
    for message in (parent, reply):
        ch.send_reaction(message["id"], {"type": "love"}, reactor)
        ch.send_reaction(message["id"], {"type": "like"}, other)
    client.pin_message(parent["id"], other)

    # Each reader sees their own reaction only; a reader without one sees [].
    expected = {reactor: ["love"], other: ["like"], reader: []}
    for user, want in expected.items():
        seen = reads_as(server, server.user_token(user), ch, parent, reply, word)
        for where, message in seen.items():
            assert own_types(message, where) == want, f"{where} read by {user}: {message.get('own_reactions')}"
            # Everyone's reactions stay in latest_reactions / reaction_counts.
            assert message["reaction_counts"] == {"love": 1, "like": 1}, where


# --- 16. sorting by a field some channels lack ---------------------------------------------


def test_16_query_channels_desc_by_pinned_at_and_last_message_at_puts_missing_values_last(client):
    (owner,) = make_users(client, "sorter")
    chans = []
    for i in range(4):
        ch = client.channel("messaging", uid(f"sort{i}"), {"members": [owner]})
        ch.create(owner)
        chans.append(ch)
    cids = [c.cid for c in chans]
    mine = {"members": {"$in": [owner]}}

    # Pinned: 1 first, then 3 (most recently pinned first); 0 and 2 are not pinned.
    chans[1].pin(owner)
    time.sleep(0.02)
    chans[3].pin(owner)
    r = client.query_channels(mine, [{"field": "pinned_at", "direction": -1}], user_id=owner)
    got = [c["channel"]["cid"] for c in r["channels"]]
    assert len(got) == 4, got
    assert got[:2] == [cids[3], cids[1]], f"pinned channels first, newest pin first: {got} (cids {cids})"
    assert set(got[2:]) == {cids[0], cids[2]}, f"unpinned channels last: {got}"

    # last_message_at: 2 is newest, then 0; 1 and 3 have no messages and come last.
    send(chans[0], owner, "older")
    time.sleep(0.02)
    send(chans[2], owner, "newer")
    r = client.query_channels(mine, [{"field": "last_message_at", "direction": -1}], user_id=owner)
    got = [c["channel"]["cid"] for c in r["channels"]]
    assert got[:2] == [cids[2], cids[0]], f"channels with messages first, newest first: {got} (cids {cids})"
    assert set(got[2:]) == {cids[1], cids[3]}, f"channels without messages last: {got}"


# --- 17. message_count goes down on delete ---------------------------------------------------


def test_17_message_count_goes_down_when_messages_are_deleted(client):
    ctype = uid("counted")
    client.create_channel_type({"name": ctype, "count_messages": True})
    (a,) = make_users(client, "counter")
    ch = client.channel(ctype, uid("count"), {"members": [a]})
    ch.create(a)
    ids = [send(ch, a, f"m{i}")["id"] for i in range(3)]
    assert ch.query()["channel"]["message_count"] == 3
    client.delete_message(ids[0])
    assert ch.query()["channel"]["message_count"] == 2, "a soft delete lowers the count"
    client.delete_message(ids[1], hard=True)
    assert ch.query()["channel"]["message_count"] == 1, "a hard delete lowers the count"


def test_17_message_count_stays_exact_under_concurrent_sends_and_deletes(client):
    """Sends and deletes racing on one channel: every acknowledged send and delete counts once."""
    import threading

    ctype = uid("counted")
    client.create_channel_type({"name": ctype, "count_messages": True})
    (a,) = make_users(client, "racer")
    ch = client.channel(ctype, uid("race"), {"members": [a]})
    ch.create(a)
    first = [send(ch, a, f"seed {i}")["id"] for i in range(12)]
    errors = []

    def sender(n):
        try:
            for i in range(6):
                send(ch, a, f"t{n} m{i}")
        except Exception as e:  # noqa: BLE001 - any refusal fails the test below
            errors.append(e)

    def deleter(ids, hard):
        try:
            for mid in ids:
                client.delete_message(mid, hard=hard)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    threads += [threading.Thread(target=deleter, args=(first[:6], False))]
    threads += [threading.Thread(target=deleter, args=(first[6:], True))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert ch.query()["channel"]["message_count"] == 12 + 4 * 6 - 12


# --- 19. server-side mark read / unread for a user who is not a member -----------------------


def test_19_server_side_mark_read_and_unread_for_a_non_member(client):
    x, y, z = make_users(client, "creator", "member-y", "member-z")
    ch = client.channel("messaging", uid("nonmember"), {"members": [y, z]})
    ch.create(x)
    assert x not in {m["user_id"] for m in ch.query()["members"]}, "precondition: the creator is not a member"
    message = send(ch, x, "from the creator")

    resp = ch.mark_read(x)
    assert resp["event"]["type"] == "message.read" and resp["event"]["user"]["id"] == x
    r = reads(ch.query())
    assert x in r, f"the non-member's read state exists after mark read: {sorted(r)}"
    assert r[x]["last_read_message_id"] == message["id"]

    ch.mark_unread(x, message_id=message["id"])
    assert x in reads(ch.query()), "the non-member's read state is still there after mark unread"


# --- 20. response shapes as Stream's OpenAPI states them -------------------------------------

UPDATE_CHANNEL_KEYS = {"channel", "members", "message", "duration"}
STATE_ONLY_KEYS = {"messages", "read", "watchers", "watcher_count", "pinned_messages", "membership", "pending_messages"}


def assert_update_channel_shape(resp, what, with_message=None):
    keys = set(resp.keys())
    assert {"channel", "members", "duration"} <= keys, f"{what}: {sorted(keys)}"
    assert not keys & STATE_ONLY_KEYS, f"{what} answers a channel state ({sorted(keys & STATE_ONLY_KEYS)}), not UpdateChannelResponse"
    assert keys <= UPDATE_CHANNEL_KEYS, f"{what}: keys outside UpdateChannelResponse: {sorted(keys - UPDATE_CHANNEL_KEYS)}"
    assert isinstance(resp["members"], list) and isinstance(resp["channel"], dict), what
    if with_message:
        assert resp["message"]["text"] == with_message, what


def test_20_channel_updates_answer_update_channel_response(server, client):
    a, b, c, d = make_users(client, "shape-a", "shape-b", "shape-c", "shape-d")
    ch = client.channel("messaging", uid("shape"), {"members": [a, b]})
    ch.create(a)
    send(ch, a, "so the state would have messages")

    raw = server.request(
        "POST", f"/channels/messaging/{ch.id}", token=client.auth_token, json={"data": {"name": "raw update"}}
    )
    assert raw.status_code in (200, 201), raw.text
    assert_update_channel_shape(raw.json(), "POST /channels/{type}/{id}")
    raw = server.request(
        "POST",
        f"/channels/messaging/{ch.id}",
        token=server.user_token(a),
        json={"data": {"name": "by a member"}, "message": {"text": "renamed"}},
    )
    assert raw.status_code in (200, 201), raw.text
    assert_update_channel_shape(raw.json(), "POST /channels/{type}/{id} (user, with message)", with_message="renamed")

    assert_update_channel_shape(ch.update({"name": "sdk update"}), "update")
    assert_update_channel_shape(ch.add_members([c]), "add_members")
    assert_update_channel_shape(ch.remove_members([c]), "remove_members")
    assert_update_channel_shape(ch.add_moderators([b]), "add_moderators")
    assert_update_channel_shape(ch.demote_moderators([b]), "demote_moderators")
    assert_update_channel_shape(ch.invite_members([d]), "invite_members")
    partial = ch.update_partial({"color": "blue"})
    keys = set(partial.keys())
    assert {"channel", "members", "duration"} <= keys and keys <= {"channel", "members", "duration"}, sorted(keys)


OWN_USER_REQUIRED = [
    "id", "custom", "language", "role", "teams", "created_at", "updated_at", "banned", "online",
    "devices", "invisible", "mutes", "channel_mutes", "unread_count", "total_unread_count",
    "unread_channels", "unread_threads",
]  # fmt: skip


def test_20_mute_answers_mute_and_own_user_unmute_does_not(client):
    muter, target = make_users(client, "muter", "muted")
    resp = client.mute_user(target, muter)
    assert {"mute", "own_user", "duration"} <= set(resp.keys()), sorted(resp.keys())
    assert resp["mute"]["user"]["id"] == muter and resp["mute"]["target"]["id"] == target
    own = resp["own_user"]
    missing = [k for k in OWN_USER_REQUIRED if k not in own]
    assert not missing, f"own_user lacks {missing}"
    assert own["id"] == muter
    assert isinstance(own["devices"], list)
    assert isinstance(own["total_unread_count"], int) and isinstance(own["unread_channels"], int)
    assert isinstance(own["channel_mutes"], list)
    assert [m["target"]["id"] for m in own["mutes"]] == [target]

    resp = client.unmute_user(target, muter)
    assert "own_user" not in resp, sorted(resp.keys())
    assert "duration" in resp and set(resp.keys()) <= {"duration", "non_existing_users"}, sorted(resp.keys())


def test_20_every_error_envelope_has_details_as_a_list(server, client):
    a, b = make_users(client, "err-a", "err-b")
    ch = client.channel("messaging", uid("err"), {"members": [a]})
    ch.create(a)
    ta = server.user_token(a)
    cases = [
        ("no route", "GET", "/no-such-route", dict(token=ta)),
        ("missing auth", "GET", "/app", dict(token=None)),
        ("malformed token", "GET", "/app", dict(token="garbage")),
        ("wrong api key", "GET", "/app", dict(token=ta, api_key="wrong")),
        ("bad signature", "GET", "/app", dict(token=jwt.encode({"user_id": a}, "not-the-secret", algorithm="HS256"))),
        ("expired", "GET", "/app", dict(token=server.user_token(a, exp=1))),
        ("not allowed", "POST", f"/channels/messaging/{ch.id}/query", dict(token=server.user_token(b), json={})),
        ("server-side only", "PATCH", "/app", dict(token=ta, json={})),
        ("unknown channel", "POST", "/channels/messaging/no-such-channel/message", dict(token=ta, json={"message": {"text": "x"}})),
        ("unknown message", "GET", "/messages/no-such-message", dict(token=ta)),
        ("invalid input", "POST", "/users", dict(token=client.auth_token, json={"users": {"bad id!": {"id": "bad id!"}}})),
        ("invalid JSON", "POST", "/channels", dict(token=ta, data="{not json")),
        ("missing message", "POST", f"/channels/messaging/{ch.id}/message", dict(token=ta, json={})),
    ]
    for what, method, path, kwargs in cases:
        resp = server.request(method, path, **kwargs)
        assert resp.status_code >= 400, f"{what}: {resp.status_code}"
        body = resp.json()
        missing = [k for k in ("code", "message", "StatusCode", "duration", "more_info", "details") if k not in body]
        assert not missing, f"{what}: the error lacks {missing}: {body}"
        assert isinstance(body["details"], list), f"{what}: details is {body['details']!r}"
        assert body["StatusCode"] == resp.status_code, what


USER_REQUIRED = {
    "id": str, "custom": dict, "language": str, "role": str, "teams": list, "created_at": str,
    "updated_at": str, "banned": bool, "online": bool, "blocked_user_ids": list,
    "shadow_banned": bool, "invisible": bool,
}  # fmt: skip


def assert_user_response(user, where):
    problems = [
        f"{k} missing" if k not in user else f"{k} is {type(user[k]).__name__}"
        for k, kind in USER_REQUIRED.items()
        if not isinstance(user.get(k), kind)
    ]
    assert not problems, f"{where}: user {user.get('id')}: {problems}"


def test_20_user_objects_carry_the_fields_user_response_requires(client):
    a, b = make_users(client, "ur-a", "ur-b")
    ch = client.channel("messaging", uid("ur"), {"members": [a, b]})
    ch.create(a)
    message = send(ch, a, "hello")
    ch.send_reaction(message["id"], {"type": "like"}, b)
    ch.mark_read(b)
    for user in client.query_users({"id": {"$in": [a, b]}})["users"]:
        assert_user_response(user, "query_users")
    state = ch.query()
    assert_user_response(state["channel"]["created_by"], "channel.created_by")
    for m in state["members"]:
        assert_user_response(m["user"], "members[].user")
    for r in state["read"]:
        assert_user_response(r["user"], "read[].user")
    got = find(state["messages"], message["id"], "channel state")
    assert_user_response(got["user"], "message.user")
    for r in got["latest_reactions"]:
        assert_user_response(r["user"], "latest_reactions[].user")
    assert_user_response(client.get_message(message["id"])["message"]["user"], "get message user")


# --- 23. gzip -------------------------------------------------------------------------------


def test_23_responses_are_gzipped_when_asked_and_only_then(server, client):
    url = server.url + "/app"
    params = {"api_key": server.api_key}
    auth = {"Authorization": client.auth_token, "stream-auth-type": "jwt"}
    resp = requests.get(url, params=params, headers={**auth, "Accept-Encoding": "gzip"}, stream=True, timeout=10)
    assert resp.status_code == 200
    assert resp.headers.get("Content-Encoding") == "gzip", dict(resp.headers)
    raw = resp.raw.read(decode_content=False)
    assert raw[:2] == b"\x1f\x8b", f"the body is not gzip: {raw[:40]!r}"
    assert "app" in json.loads(gzip.decompress(raw))

    resp = requests.get(url, params=params, headers={**auth, "Accept-Encoding": None}, stream=True, timeout=10)
    assert "Accept-Encoding" not in resp.request.headers
    assert resp.status_code == 200
    assert "Content-Encoding" not in resp.headers, dict(resp.headers)
    assert "app" in json.loads(resp.raw.read(decode_content=False))


# --- 24. capabilities name only what exists ---------------------------------------------------

NOT_BUILT = {"create-call", "join-call"}


@pytest.mark.parametrize("ctype", ["messaging", "team", "livestream", "commerce", "gaming"])
def test_24_own_capabilities_never_advertise_calls(server, client, ctype):
    (member,) = make_users(client, "cap-member")
    (admin,) = make_users(client, "cap-admin", role="admin")
    ch = client.channel(ctype, uid("caps"), {"members": [member]})
    created = ch.create(member)
    views = {
        "server-side create": created["channel"]["own_capabilities"],
        "server-side query": ch.query()["channel"]["own_capabilities"],
    }
    for who, user in (("admin", admin), ("member", member)):
        token = server.user_token(user)
        state = ok(server.request("POST", f"/channels/{ctype}/{ch.id}/query", token=token, json={}), f"{who} query")
        views[f"{who} channel query"] = state["channel"]["own_capabilities"]
        found = ok(
            server.request("POST", "/channels", token=token, json={"filter_conditions": {"cid": ch.cid}, "sort": []}),
            f"{who} query channels",
        )
        views[f"{who} query channels"] = found["channels"][0]["channel"]["own_capabilities"]
    assert "send-message" in views["admin channel query"], "sanity: capabilities are listed at all"
    # Bans are built: an admin may ban here, a plain member may not.
    assert "ban-channel-members" in views["admin channel query"]
    assert "ban-channel-members" not in views["member channel query"]
    # Uploads are built: where the type allows them, members may upload.
    assert "upload-file" in views["member channel query"]
    for where, caps in views.items():
        assert not NOT_BUILT & set(caps), f"{ctype} {where} advertises {sorted(NOT_BUILT & set(caps))}"


# --- 25. settings that are accepted must do something (or be refused) -------------------------


def last_message_at(ch):
    return ch.query()["channel"].get("last_message_at")


def test_25a_skip_last_msg_update_for_system_msgs(client):
    (a,) = make_users(client, "sys-author")
    ctype = uid("skipsys")
    client.create_channel_type({"name": ctype, "skip_last_msg_update_for_system_msgs": True})
    assert client.get_channel_type(ctype)["skip_last_msg_update_for_system_msgs"] is True

    # Without the setting a system message moves last_message_at (so the check below means something).
    plain = client.channel("messaging", uid("sys-plain"), {"members": [a]})
    plain.create(a)
    send(plain, a, "regular")
    before = last_message_at(plain)
    time.sleep(0.02)
    send(plain, a, "system note", type="system")
    assert last_message_at(plain) != before, "messaging: a system message updates last_message_at"

    ch = client.channel(ctype, uid("sys-skip"), {"members": [a]})
    ch.create(a)
    send(ch, a, "regular")
    first = last_message_at(ch)
    assert first is not None
    time.sleep(0.02)
    send(ch, a, "system note", type="system")
    assert last_message_at(ch) == first, "the system message left last_message_at unchanged"
    time.sleep(0.02)
    send(ch, a, "regular again")
    assert last_message_at(ch) > first, "a regular message still moves last_message_at"


def test_25b_message_retention_is_validated(client):
    # Messages cannot be back-dated through the API (MessageRequest has no created_at), so
    # retention cannot be observed in a test; the setting's accepted values are checked instead:
    # "infinite" or a whole number of days, as a string (OpenAPI: "One of: infinite, numeric").
    ctype = uid("retention")
    created = client.create_channel_type({"name": ctype, "message_retention": "7"})
    assert created["message_retention"] == "7"
    assert client.update_channel_type(ctype, message_retention="infinite")["message_retention"] == "infinite"
    assert client.get_channel_type(ctype)["message_retention"] == "infinite"
    for bad in ["abc", "-3", "1.5"]:
        with pytest.raises(StreamAPIException) as e:
            client.update_channel_type(ctype, message_retention=bad)
        assert api_code(e) == 4, (bad, e.value)
    assert client.get_channel_type(ctype)["message_retention"] == "infinite"


def test_25c_user_response_time_enabled_gives_avg_response_time(client):
    asker, answerer = make_users(client, "asker", "answerer")
    client.update_app_settings(user_response_time_enabled=True)
    try:
        ch = client.channel("messaging", data={"members": [asker, answerer]})
        ch.create(asker)
        send(ch, asker, "a question")
        time.sleep(1.2)
        send(ch, answerer, "the answer")
        users = {u["id"]: u for u in client.query_users({"id": {"$in": [asker, answerer]}})["users"]}
        got = users[answerer].get("avg_response_time")
        assert isinstance(got, int) and got >= 1, f"the replier's avg_response_time: {got!r} ({users[answerer]})"
    finally:
        client.update_app_settings(user_response_time_enabled=False)


@pytest.mark.parametrize("setting", [{"partition_size": 10}, {"partition_ttl": "24h"}])
def test_25d_partitioning_is_refused_clearly(client, setting):
    # Dynamic partitioning is not built (every watcher receives every message): refused, named.
    name = next(iter(setting))
    with pytest.raises(StreamAPIException) as e:
        client.create_channel_type({"name": uid("partition"), **setting})
    assert api_code(e) == 4 and e.value.status_code == 400, e.value
    assert name in str(e.value), e.value
    ctype = uid("unpartitioned")
    client.create_channel_type({"name": ctype})
    with pytest.raises(StreamAPIException) as e:
        client.update_channel_type(ctype, **setting)
    assert api_code(e) == 4 and e.value.status_code == 400, e.value
    assert name in str(e.value), e.value
    config = client.get_channel_type(ctype)
    assert not config.get("partition_size") and not config.get("partition_ttl"), config


def test_25e_permission_version_v1_is_refused(client):
    try:
        with pytest.raises(StreamAPIException) as e:
            client.update_app_settings(permission_version="v1")
        assert api_code(e) == 4 and e.value.status_code == 400, e.value
        assert "permission_version" in str(e.value)
        assert client.get_app_settings()["app"]["permission_version"] == "v2"
        client.update_app_settings(permission_version="v2")
    finally:
        try:
            client.update_app_settings(permission_version="v2")
        except StreamAPIException:
            pass
