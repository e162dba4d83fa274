"""Bans, black-box: app-wide, channel and shadow bans through the official Python SDK
(`ban_user`, `unban_user`, `shadow_ban`, `remove_shadow_ban`, `query_banned_users`) and raw HTTP
with user tokens: what a ban stops, where it applies, who sees a shadowed message, querying
bans, who may ban, `ban-channel-members` in own_capabilities, events and the error envelope."""

import json
import time
import uuid
from datetime import datetime

import jwt
import pytest
from stream_chat.base.exceptions import StreamAPIException

import envelope
from conftest import read_until

# Besides the store keys and Rust internals every error is checked for.
BAN_LEAKS = ("bans#", "BanRequest", "QueryBans")


def uid(prefix="b"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ts(value):
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def assert_error(resp, status, code=None):
    return envelope.assert_error(resp, status, code, BAN_LEAKS)


def assert_no_leak(message):
    envelope.assert_no_leak(message, BAN_LEAKS)


def assert_api_error(excinfo, status, code, words=None):
    err = excinfo.value
    assert err.status_code == status, (err.status_code, err.error_message)
    assert err.error_code == code, (err.error_code, err.error_message)
    if words:
        assert words in err.error_message, err.error_message
    assert_no_leak(err.error_message)


def send_as(server, user_id, ch, text="hi"):
    """A client-side send (the user's own token)."""
    return server.request("POST", f"/channels/{ch.channel_type}/{ch.id}/message", token=server.user_token(user_id), json={"message": {"text": text}})


def query_as(server, user_id, ch):
    r = server.request("POST", f"/channels/{ch.channel_type}/{ch.id}/query", token=server.user_token(user_id), json={"state": True})
    assert r.status_code in (200, 201), r.text
    return r.json()


def get_user(client, user_id):
    return client.query_users({"id": user_id})["users"][0]


def bans_of(client, **filters):
    return client.query_banned_users({"filter_conditions": filters, "limit": 300})["bans"]


def member_of(state, user_id):
    return next(m for m in state["members"] if m["user_id"] == user_id)


@pytest.fixture
def cast(client):
    """admin (role admin), mod (role moderator), three plain users, and two messaging channels:
    `ch` (alice, bob, carol, chmod as channel moderator) and `other` (alice, bob, carol)."""
    p = {k: uid(k) for k in ("admin", "gmod", "alice", "bob", "carol", "chmod")}
    client.upsert_users(
        [
            {"id": p["admin"], "role": "admin"},
            {"id": p["gmod"], "role": "moderator"},
            {"id": p["alice"]},
            {"id": p["bob"]},
            {"id": p["carol"]},
            {"id": p["chmod"]},
        ]
    )
    ch = client.channel("messaging", uid("ban"), {"members": [p["alice"], p["bob"], p["carol"]]})
    ch.create(p["alice"])
    ch.add_members([{"user_id": p["chmod"], "channel_role": "channel_moderator"}])
    other = client.channel("messaging", uid("other"), {"members": [p["alice"], p["bob"], p["carol"]]})
    other.create(p["alice"])
    p["ch"], p["other"] = ch, other
    return p


# 1. The SDK's own tests -----------------------------------------------------------------------


def test_sdk_ban_user_and_unban_user(client, cast):
    bob, admin = cast["bob"], cast["admin"]
    assert "duration" in client.ban_user(bob, user_id=admin)
    assert get_user(client, bob)["banned"] is True
    client.unban_user(bob, user_id=admin)
    assert get_user(client, bob)["banned"] is False


def test_sdk_query_banned_users(client, cast):
    client.ban_user(cast["bob"], user_id=cast["admin"], reason="because")
    resp = client.query_banned_users({"filter_conditions": {"reason": "because"}, "limit": 1})
    assert len(resp["bans"]) == 1


def test_sdk_channel_ban_user_and_unban_user(client, cast):
    ch, bob, admin = cast["ch"], cast["bob"], cast["admin"]
    ch.ban_user(bob, user_id=admin)
    ch.ban_user(bob, user_id=admin, timeout=3600, reason="offensive language is not allowed here")
    bans = bans_of(client, user_id=bob, channel_cid=ch.cid)
    assert len(bans) == 1 and bans[0]["reason"] == "offensive language is not allowed here"
    ch.unban_user(bob)
    assert bans_of(client, user_id=bob) == []


def test_sdk_shadow_ban(client, cast):
    """stream-chat-python's test_shadow_ban, step for step."""
    ch, user, server_user = cast["ch"], cast["bob"], cast["admin"]
    msg_id = str(uuid.uuid4())
    ch.send_message({"id": msg_id, "text": "hello world"}, user)
    assert not client.get_message(msg_id)["message"]["shadowed"]

    client.shadow_ban(user, user_id=server_user)
    msg_id = str(uuid.uuid4())
    ch.send_message({"id": msg_id, "text": "hello world"}, user)
    assert client.get_message(msg_id)["message"]["shadowed"]

    client.remove_shadow_ban(user, user_id=server_user)
    msg_id = str(uuid.uuid4())
    ch.send_message({"id": msg_id, "text": "hello world"}, user)
    assert not client.get_message(msg_id)["message"]["shadowed"]


# 2. An app-wide ban -------------------------------------------------------------------------


def test_app_ban_blocks_sending_reacting_and_updating_until_unbanned(server, client, cast):
    ch, other, bob, alice, admin = cast["ch"], cast["other"], cast["bob"], cast["alice"], cast["admin"]
    own = ch.send_message({"text": "before"}, bob)["message"]["id"]
    theirs = ch.send_message({"text": "alice"}, alice)["message"]["id"]
    client.ban_user(bob, user_id=admin, reason="spam")

    user = get_user(client, bob)
    assert user["banned"] is True and not user.get("ban_expires"), user
    assert bob in [u["id"] for u in client.query_users({"banned": True, "id": {"$in": [bob, alice]}})["users"]]
    assert alice not in [u["id"] for u in client.query_users({"banned": True, "id": {"$in": [bob, alice]}})["users"]]

    # sending: server side and client side, in any channel
    for chan in (ch, other):
        with pytest.raises(StreamAPIException) as e:
            chan.send_message({"text": "server-side"}, bob)
        assert_api_error(e, 403, 17, "banned")
        assert_error(send_as(server, bob, chan, "client-side"), 403, 17)
    # reacting
    with pytest.raises(StreamAPIException) as e:
        ch.send_reaction(theirs, {"type": "like"}, bob)
    assert_api_error(e, 403, 17, "banned")
    r = server.request("POST", f"/messages/{theirs}/reaction", token=server.user_token(bob), json={"reaction": {"type": "like"}})
    assert_error(r, 403, 17)
    # updating their own message (full and partial), client side
    r = server.request("POST", f"/messages/{own}", token=server.user_token(bob), json={"message": {"text": "edited"}})
    assert_error(r, 403, 17)
    r = server.request("PUT", f"/messages/{own}", token=server.user_token(bob), json={"set": {"text": "edited"}})
    assert_error(r, 403, 17)
    assert client.get_message(own)["message"]["text"] == "before"
    texts = [m["text"] for m in ch.query()["messages"]]
    assert "server-side" not in texts and "client-side" not in texts
    # others are not affected
    assert send_as(server, alice, ch, "alice still talks").status_code in (200, 201)

    client.unban_user(bob, user_id=admin)
    assert get_user(client, bob)["banned"] is False
    assert ch.send_message({"text": "back"}, bob)["message"]["text"] == "back"
    assert send_as(server, bob, other, "back too").status_code in (200, 201)
    ch.send_reaction(theirs, {"type": "like"}, bob)
    r = server.request("POST", f"/messages/{own}", token=server.user_token(bob), json={"message": {"text": "edited"}})
    assert r.status_code in (200, 201), r.text
    assert client.get_message(own)["message"]["text"] == "edited"


def test_app_ban_blocks_server_side_updates_as_the_banned_user(client, cast):
    ch, bob = cast["ch"], cast["bob"]
    own = ch.send_message({"text": "before"}, bob)["message"]["id"]
    client.ban_user(bob, user_id=cast["admin"])
    with pytest.raises(StreamAPIException) as e:
        client.update_message({"id": own, "text": "edited by a banned user", "user_id": bob})
    assert_api_error(e, 403, 17, "banned")
    with pytest.raises(StreamAPIException) as e:
        client.update_message_partial(own, {"set": {"text": "edited by a banned user"}}, bob)
    assert_api_error(e, 403, 17, "banned")
    assert client.get_message(own)["message"]["text"] == "before"


def test_lifting_both_a_ban_and_a_shadow_ban_restores_sending(server, client, cast):
    ch, bob, admin = cast["ch"], cast["bob"], cast["admin"]
    client.ban_user(bob, user_id=admin)
    client.shadow_ban(bob, user_id=admin)
    client.unban_user(bob, user_id=admin)
    client.remove_shadow_ban(bob, user_id=admin)
    user = get_user(client, bob)
    assert not user["banned"] and not user["shadow_banned"], user
    r = send_as(server, bob, ch, "free again")
    assert r.status_code in (200, 201), r.text
    assert r.json()["message"]["shadowed"] is False


# 3. A channel ban ---------------------------------------------------------------------------


def test_channel_ban_applies_in_that_channel_only(server, client, cast):
    ch, other, bob, alice, admin = cast["ch"], cast["other"], cast["bob"], cast["alice"], cast["admin"]
    theirs = ch.send_message({"text": "alice"}, alice)["message"]["id"]
    ch.ban_user(bob, user_id=admin, reason="off topic")

    assert member_of(ch.query(), bob)["banned"] is True
    assert member_of(ch.query(), alice).get("banned") is False
    assert member_of(query_as(server, alice, ch), bob)["banned"] is True
    found = client.query_channels({"cid": ch.cid})["channels"][0]
    assert member_of(found, bob)["banned"] is True
    assert member_of(other.query(), bob).get("banned") is False
    assert get_user(client, bob)["banned"] is False, "a channel ban is not an app-wide ban"

    with pytest.raises(StreamAPIException) as e:
        ch.send_message({"text": "server-side"}, bob)
    assert_api_error(e, 403, 17, "banned from this channel")
    body = assert_error(send_as(server, bob, ch, "client-side"), 403, 17)
    assert "banned from this channel" in body["message"]
    with pytest.raises(StreamAPIException) as e:
        ch.send_reaction(theirs, {"type": "like"}, bob)
    assert_api_error(e, 403, 17)

    # the other channel works
    assert other.send_message({"text": "elsewhere"}, bob)["message"]["text"] == "elsewhere"
    assert send_as(server, bob, other, "elsewhere too").status_code in (200, 201)

    ch.unban_user(bob, user_id=admin)
    assert member_of(ch.query(), bob).get("banned") is False
    assert ch.send_message({"text": "back"}, bob)["message"]["text"] == "back"
    assert send_as(server, bob, ch, "back too").status_code in (200, 201)


def test_channel_ban_by_channel_cid_and_app_unban_leaves_it(server, client, cast):
    ch, other, bob, admin = cast["ch"], cast["other"], cast["bob"], cast["admin"]
    client.ban_user(bob, user_id=admin, channel_cid=ch.cid)
    client.ban_user(bob, user_id=admin)
    assert len(bans_of(client, user_id=bob)) == 2
    client.unban_user(bob, user_id=admin)  # the app-wide one only
    assert [b["channel"]["cid"] for b in bans_of(client, user_id=bob)] == [ch.cid]
    assert_error(send_as(server, bob, ch), 403, 17)
    assert send_as(server, bob, other).status_code in (200, 201)
    client.unban_user(bob, user_id=admin, channel_cid=ch.cid)
    assert bans_of(client, user_id=bob) == []
    assert send_as(server, bob, ch).status_code in (200, 201)


def test_channel_ban_survives_leaving_and_rejoining(server, client, cast):
    ch, bob = cast["ch"], cast["bob"]
    ch.ban_user(bob, user_id=cast["admin"])
    ch.remove_members([bob])
    ch.add_members([bob])
    assert [b["user"]["id"] for b in bans_of(client, user_id=bob, channel_cid=ch.cid)] == [bob]
    assert member_of(ch.query(), bob)["banned"] is True
    assert_error(send_as(server, bob, ch, "rejoined"), 403, 17)


def test_channel_ban_of_a_non_member_holds_when_they_join(server, client, cast):
    ch, admin = cast["ch"], cast["admin"]
    newcomer = uid("new")
    client.upsert_user({"id": newcomer})
    ch.ban_user(newcomer, user_id=admin)
    ch.add_members([newcomer])
    assert member_of(ch.query(), newcomer)["banned"] is True
    assert_error(send_as(server, newcomer, ch, "just joined"), 403, 17)


def test_livestream_channel_ban_stops_a_non_member(server, client, cast):
    viewer, admin = cast["carol"], cast["admin"]
    ls = client.channel("livestream", uid("live"))
    ls.create(admin)
    assert send_as(server, viewer, ls, "hello stream").status_code in (200, 201)
    ls.ban_user(viewer, user_id=admin)
    assert_error(send_as(server, viewer, ls, "after the ban"), 403, 17)
    texts = [m["text"] for m in ls.query()["messages"]]
    assert "after the ban" not in texts


# 4. A shadow ban ----------------------------------------------------------------------------


def test_shadowed_message_is_seen_by_its_author_only_and_not_unread(server, client, cast):
    ch, bob, alice, carol, admin = cast["ch"], cast["bob"], cast["alice"], cast["carol"], cast["admin"]
    normal = send_as(server, bob, ch, "normal")
    assert normal.status_code in (200, 201)
    reads = {r["user"]["id"]: r["unread_messages"] for r in query_as(server, alice, ch)["read"]}
    assert reads[alice] == 1, "counting works before the shadow ban"
    ch.mark_read(alice)
    ch.mark_read(carol)

    client.shadow_ban(bob, user_id=admin)
    assert get_user(client, bob)["shadow_banned"] is True
    sent = send_as(server, bob, ch, "shadowed secret")
    assert sent.status_code in (200, 201), sent.text
    msg = sent.json()["message"]
    assert client.get_message(msg["id"])["message"]["shadowed"] is True

    # the author sees it
    assert "shadowed secret" in [m["text"] for m in query_as(server, bob, ch)["messages"]]
    # the other members do not, and it is not unread for them
    for viewer in (alice, carol):
        state = query_as(server, viewer, ch)
        texts = [m["text"] for m in state["messages"]]
        assert "normal" in texts and "shadowed secret" not in texts, (viewer, texts)
        reads = {r["user"]["id"]: r["unread_messages"] for r in state["read"]}
        assert reads[viewer] == 0, (viewer, reads)
        assert client.unread_counts(viewer)["total_unread_count"] == 0
        listed = server.request("POST", "/channels", token=server.user_token(viewer), json={"filter_conditions": {"cid": ch.cid}})
        assert "shadowed secret" not in [m["text"] for m in listed.json()["channels"][0]["messages"]]

    client.remove_shadow_ban(bob, user_id=admin)
    after = send_as(server, bob, ch, "visible again")
    assert after.json()["message"]["shadowed"] is False
    assert "visible again" in [m["text"] for m in query_as(server, alice, ch)["messages"]]
    assert client.unread_counts(alice)["total_unread_count"] == 1


def test_channel_shadow_ban_shadows_only_there(client, cast):
    ch, other, bob, admin = cast["ch"], cast["other"], cast["bob"], cast["admin"]
    ch.ban_user(bob, user_id=admin, shadow=True)
    here = ch.send_message({"text": "here"}, bob)["message"]["id"]
    there = other.send_message({"text": "there"}, bob)["message"]["id"]
    assert client.get_message(here)["message"]["shadowed"] is True
    assert client.get_message(there)["message"]["shadowed"] is False
    (ban,) = bans_of(client, user_id=bob)
    assert ban["shadow"] is True and ban["channel"]["cid"] == ch.cid, ban
    # remove_shadow_ban in the channel's scope lifts it
    client.remove_shadow_ban(bob, user_id=admin, type="messaging", id=ch.id)
    again = ch.send_message({"text": "here again"}, bob)["message"]["id"]
    assert client.get_message(again)["message"]["shadowed"] is False
    assert bans_of(client, user_id=bob) == []


def test_remove_shadow_ban_leaves_an_open_ban(server, client, cast):
    bob, admin = cast["bob"], cast["admin"]
    client.ban_user(bob, user_id=admin)
    client.remove_shadow_ban(bob, user_id=admin)
    assert get_user(client, bob)["banned"] is True
    assert_error(send_as(server, bob, cast["ch"]), 403, 17)


# 5. query_banned_users ----------------------------------------------------------------------


def test_query_banned_users_filters(client, cast):
    ch, admin, gmod = cast["ch"], cast["admin"], cast["gmod"]
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    reason = uid("why")
    client.ban_user(alice, user_id=admin, reason=reason)
    ch.ban_user(bob, user_id=gmod, reason=reason)
    client.ban_user(carol, banned_by_id=gmod, reason="other " + reason)
    mine = {"$in": [alice, bob, carol]}

    by_user = bans_of(client, user_id=alice)
    assert [(b["user"]["id"], b["banned_by"]["id"], b["reason"], b["shadow"]) for b in by_user] == [(alice, admin, reason, False)]
    assert "channel" not in by_user[0] and "expires" not in by_user[0]
    assert by_user[0]["user"]["banned"] is True

    by_channel = bans_of(client, channel_cid=ch.cid)
    assert [b["user"]["id"] for b in by_channel] == [bob]
    assert by_channel[0]["channel"]["cid"] == ch.cid and by_channel[0]["banned_by"]["id"] == gmod

    assert sorted(b["user"]["id"] for b in bans_of(client, user_id=mine, banned_by_id=gmod)) == sorted([bob, carol])
    assert [b["user"]["id"] for b in bans_of(client, user_id=mine, banned_by_id=admin)] == [alice]
    assert sorted(b["user"]["id"] for b in bans_of(client, reason=reason)) == sorted([alice, bob])
    assert [b["user"]["id"] for b in bans_of(client, reason="other " + reason)] == [carol]
    assert bans_of(client, reason=uid("none")) == []


def test_query_banned_users_sort_limit_offset_and_created_at(client, cast):
    admin = cast["admin"]
    targets = [cast["alice"], cast["bob"], cast["carol"]]
    for t in targets:
        client.ban_user(t, user_id=admin)
        time.sleep(0.01)
    mine = {"user_id": {"$in": targets}}

    newest_first = client.query_banned_users({"filter_conditions": mine})["bans"]
    assert [b["user"]["id"] for b in newest_first] == targets[::-1]
    oldest_first = client.query_banned_users({"filter_conditions": mine, "sort": [{"field": "created_at", "direction": 1}]})["bans"]
    assert [b["user"]["id"] for b in oldest_first] == targets
    created = [ts(b["created_at"]) for b in oldest_first]
    assert created == sorted(created)

    page = client.query_banned_users({"filter_conditions": mine, "sort": [{"field": "created_at", "direction": 1}], "limit": 1, "offset": 1})["bans"]
    assert [b["user"]["id"] for b in page] == [targets[1]]
    assert len(client.query_banned_users({"filter_conditions": mine, "limit": 2})["bans"]) == 2
    assert client.query_banned_users({"filter_conditions": mine, "offset": 3})["bans"] == []

    after = {**mine, "created_at": {"$gt": oldest_first[0]["created_at"]}}
    assert [b["user"]["id"] for b in client.query_banned_users({"filter_conditions": after, "sort": [{"field": "created_at", "direction": 1}]})["bans"]] == targets[1:]
    # active bans stay with exclude_expired_bans
    assert len(client.query_banned_users({"filter_conditions": mine, "exclude_expired_bans": True})["bans"]) == 3

    for payload in ({"filter_conditions": mine, "limit": 301}, {"filter_conditions": mine, "offset": 10001}):
        with pytest.raises(StreamAPIException) as e:
            client.query_banned_users(payload)
        assert_api_error(e, 400, 4)
    assert len(client.query_banned_users({"filter_conditions": mine, "limit": 300, "offset": 10000})["bans"]) == 0


def test_timed_ban_shows_when_it_ends(client, cast):
    ch, bob, carol, admin = cast["ch"], cast["bob"], cast["carol"], cast["admin"]
    client.ban_user(bob, user_id=admin, timeout=90)
    ch.ban_user(carol, user_id=admin, timeout=5)
    (app,) = bans_of(client, user_id=bob)
    assert abs((ts(app["expires"]) - ts(app["created_at"])).total_seconds() - 90 * 60) < 2, app
    assert ts(get_user(client, bob)["ban_expires"]) == ts(app["expires"])
    (chan,) = bans_of(client, user_id=carol)
    assert abs((ts(chan["expires"]) - ts(chan["created_at"])).total_seconds() - 5 * 60) < 2, chan
    # timeout 0: no end
    client.ban_user(carol, user_id=admin, timeout=0)
    (open_ban,) = [b for b in bans_of(client, user_id=carol) if "channel" not in b]
    assert "expires" not in open_ban and not get_user(client, carol).get("ban_expires")


# 6. Who may ban -----------------------------------------------------------------------------


def ban_calls(ch, target):
    """(name, method, path, kwargs) for each ban call, app-wide and in `ch`."""
    payload = json.dumps({"filter_conditions": {"user_id": target}})
    return [
        ("app ban", "POST", "/moderation/ban", {"json": {"target_user_id": target, "reason": "matrix"}}),
        ("channel ban", "POST", "/moderation/ban", {"json": {"target_user_id": target, "type": ch.channel_type, "id": ch.id}}),
        ("channel ban by cid", "POST", "/moderation/ban", {"json": {"target_user_id": target, "channel_cid": ch.cid}}),
        ("app unban", "DELETE", "/moderation/ban", {"params": {"target_user_id": target}}),
        ("channel unban", "DELETE", "/moderation/ban", {"params": {"target_user_id": target, "type": ch.channel_type, "id": ch.id}}),
        ("query", "GET", "/query_banned_users", {"params": {"payload": payload}}),
    ]


def test_plain_users_and_guests_may_not_ban(server, client, cast):
    ch, bob, alice = cast["ch"], cast["bob"], cast["alice"]
    gid = uid("guest")
    guest = server.request("POST", "/guest", auth_type="anonymous", json={"user": {"id": gid}})
    assert guest.status_code in (200, 201), guest.text
    callers = {"plain member": server.user_token(alice), "guest": guest.json()["access_token"]}
    # the target is banned already, so an unban that got through would show
    client.ban_user(bob, user_id=cast["admin"], reason="kept")
    ch.ban_user(bob, user_id=cast["admin"], reason="kept")
    for who, token in callers.items():
        for name, method, path, kw in ban_calls(ch, bob):
            r = server.request(method, path, token=token, **kw)
            assert r.status_code == 403, (who, name, r.status_code, r.text)
            assert_error(r, 403, 17)
    bans = bans_of(client, user_id=bob)
    assert len(bans) == 2 and {b["reason"] for b in bans} == {"kept"}, bans


def test_anonymous_and_tokenless_callers_may_not_ban(server, client, cast):
    ch, bob = cast["ch"], cast["bob"]
    client.ban_user(bob, user_id=cast["admin"], reason="kept")
    internal_names = []
    for name, method, path, kw in ban_calls(ch, bob):
        r = server.request(method, path, auth_type="anonymous", **kw)
        assert r.status_code in (401, 403), (name, r.status_code, r.text)
        body = assert_error(r, r.status_code)
        if r.status_code == 403:
            assert body["code"] == 17, body
        if "!anon" in body["message"]:
            internal_names.append((name, body["message"]))
        r = server.request(method, path, **kw)  # jwt, no token
        assert_error(r, 401)
    assert [b["reason"] for b in bans_of(client, user_id=bob)] == ["kept"]
    assert bans_of(client, user_id=bob, channel_cid=ch.cid) == []
    assert internal_names == [], f"refusals name the internal anonymous user id: {internal_names}"


def test_nobody_bans_themselves(server, client, cast):
    ch, bob, chmod, admin = cast["ch"], cast["bob"], cast["chmod"], cast["admin"]
    r = server.request("POST", "/moderation/ban", token=server.user_token(bob), json={"target_user_id": bob})
    assert_error(r, 400, 4)
    r = server.request("POST", "/moderation/ban", token=server.user_token(chmod), json={"target_user_id": chmod, "type": "messaging", "id": ch.id})
    assert_error(r, 400, 4)
    r = server.request("POST", "/moderation/ban", token=server.user_token(admin), json={"target_user_id": admin})
    assert_error(r, 400, 4)
    with pytest.raises(StreamAPIException) as e:
        client.ban_user(bob, user_id=bob)
    assert_api_error(e, 400, 4)
    assert bans_of(client, user_id={"$in": [bob, chmod, admin]}) == []


@pytest.mark.parametrize("role", ["admin", "gmod"])
def test_admins_and_moderators_ban_app_wide(server, client, cast, role):
    ch, bob, caller = cast["ch"], cast["bob"], cast[role]
    tok = server.user_token(caller)
    for name, method, path, kw in ban_calls(ch, bob):
        r = server.request(method, path, token=tok, **kw)
        assert r.status_code == 200, (role, name, r.status_code, r.text)
    # banning took effect, with the caller as who banned (a body cannot claim someone else)
    r = server.request("POST", "/moderation/ban", token=tok, json={"target_user_id": bob, "banned_by_id": cast["alice"], "user_id": cast["alice"]})
    assert r.status_code == 200, r.text
    (ban,) = bans_of(client, user_id=bob)
    assert ban["banned_by"]["id"] == caller, ban
    assert get_user(client, bob)["banned"] is True
    r = server.request("GET", "/query_banned_users", token=tok, params={"payload": json.dumps({"filter_conditions": {"user_id": bob}})})
    assert [b["user"]["id"] for b in r.json()["bans"]] == [bob]
    r = server.request("DELETE", "/moderation/ban", token=tok, params={"target_user_id": bob})
    assert r.status_code == 200 and get_user(client, bob)["banned"] is False


def test_channel_moderator_bans_in_their_channel_only(server, client, cast):
    ch, other, bob, chmod = cast["ch"], cast["other"], cast["bob"], cast["chmod"]
    tok = server.user_token(chmod)
    r = server.request("POST", "/moderation/ban", token=tok, json={"target_user_id": bob, "type": "messaging", "id": ch.id, "reason": "mod"})
    assert r.status_code == 200, r.text
    (ban,) = bans_of(client, user_id=bob)
    assert ban["channel"]["cid"] == ch.cid and ban["banned_by"]["id"] == chmod
    assert_error(send_as(server, bob, ch), 403, 17)
    r = server.request("DELETE", "/moderation/ban", token=tok, params={"target_user_id": bob, "type": "messaging", "id": ch.id})
    assert r.status_code == 200, r.text
    assert bans_of(client, user_id=bob) == []
    r = server.request("POST", "/moderation/ban", token=tok, json={"target_user_id": bob, "channel_cid": ch.cid})
    assert r.status_code == 200, r.text

    # not app-wide, not in a channel they do not moderate, and no listing of bans
    assert_error(server.request("POST", "/moderation/ban", token=tok, json={"target_user_id": bob}), 403, 17)
    assert_error(server.request("POST", "/moderation/ban", token=tok, json={"target_user_id": bob, "type": "messaging", "id": other.id}), 403, 17)
    assert_error(server.request("DELETE", "/moderation/ban", token=tok, params={"target_user_id": bob}), 403, 17)
    r = server.request("GET", "/query_banned_users", token=tok, params={"payload": json.dumps({"filter_conditions": {}})})
    assert_error(r, 403, 17)
    assert [b["channel"]["cid"] for b in bans_of(client, user_id=bob)] == [ch.cid]


# 7. own_capabilities -------------------------------------------------------------------------


def test_ban_channel_members_capability(server, client, cast):
    ch = cast["ch"]
    caps = lambda who: set(query_as(server, who, ch)["channel"]["own_capabilities"])  # noqa: E731
    assert "ban-channel-members" in caps(cast["admin"])
    assert "ban-channel-members" in caps(cast["chmod"])
    assert "ban-channel-members" not in caps(cast["alice"])
    assert "ban-channel-members" not in caps(cast["bob"])
    # a member made channel moderator later gains it
    ch.add_moderators([cast["bob"]])
    assert "ban-channel-members" in caps(cast["bob"])


# 8. Errors ----------------------------------------------------------------------------------


def test_bad_ban_requests_answer_in_the_envelope(server, client, cast):
    bob, ch = cast["bob"], cast["ch"]
    srv = jwt.encode({"server": True}, server.api_secret, algorithm="HS256")
    bad = [
        ({}, 400, "target_user_id"),
        ({"target_user_id": ""}, 400, "target_user_id"),
        ({"target_user_id": bob, "channel_cid": "nocolon"}, 400, "channel_cid"),
        ({"target_user_id": bob, "type": "messaging"}, 400, None),
        ({"target_user_id": bob, "timeout": -1}, 400, "timeout"),
        ({"target_user_id": bob, "timeout": 525601}, 400, "timeout"),
        ({"target_user_id": bob, "reason": "x" * 1001}, 400, "reason"),
        ({"target_user_id": uid("nobody")}, 404, None),
        ({"target_user_id": bob, "type": "messaging", "id": uid("nochan")}, 404, None),
    ]
    for body, status, word in bad:
        r = server.request("POST", "/moderation/ban", token=srv, json=body)
        err = assert_error(r, status, 4 if status == 400 else 16)
        if word:
            assert word in err["message"], (body, err)
    assert bans_of(client, user_id=bob) == []
    # the limits themselves are fine
    r = server.request("POST", "/moderation/ban", token=srv, json={"target_user_id": bob, "timeout": 525600, "reason": "x" * 1000, "type": "messaging", "id": ch.id})
    assert r.status_code == 200, r.text
    assert_error(server.request("DELETE", "/moderation/ban", token=srv), 400, 4)
    assert_error(server.request("GET", "/query_banned_users", token=srv, params={"payload": "{not json"}), 400, 4)
    # the SDK surfaces them as StreamAPIException
    with pytest.raises(StreamAPIException) as e:
        client.ban_user(bob, user_id=cast["admin"], timeout=-1)
    assert_api_error(e, 400, 4, "timeout")


# Events ----------------------------------------------------------------------------------------


def test_channel_ban_events_and_shadowed_messages_on_the_socket(server, client, cast):
    ch, alice, bob, admin = cast["ch"], cast["alice"], cast["bob"], cast["admin"]
    ws, hello = server.connect_socket(alice)
    try:
        r = server.request(
            "POST", f"/channels/messaging/{ch.id}/query", token=server.user_token(alice), params={"connection_id": hello["connection_id"]}, json={"watch": True, "state": True}
        )
        assert r.status_code in (200, 201), r.text
        ch.ban_user(bob, user_id=admin, reason="events")
        frames = read_until(ws, lambda f: f.get("type") == "user.banned")
        banned = [f for f in frames if f.get("type") == "user.banned"]
        assert banned, [f.get("type") for f in frames]
        assert banned[0]["cid"] == ch.cid and banned[0]["user"]["id"] == bob, banned[0]
        ch.unban_user(bob, user_id=admin)
        frames = read_until(ws, lambda f: f.get("type") == "user.unbanned")
        assert [f for f in frames if f.get("type") == "user.unbanned" and f.get("cid") == ch.cid], [f.get("type") for f in frames]

        ch.ban_user(bob, user_id=admin, shadow=True)
        read_until(ws, lambda f: f.get("type") == "user.banned")
        ch.send_message({"text": "shadowed on the wire"}, bob)
        ch.send_message({"text": "marker"}, cast["carol"])
        frames = read_until(ws, lambda f: f.get("type") == "message.new" and f["message"]["text"] == "marker")
        texts = [f["message"]["text"] for f in frames if f.get("type") == "message.new"]
        assert texts == ["marker"], texts
        assert "shadowed on the wire" not in json.dumps(frames)
    finally:
        ws.close()


def test_future_channel_bans_follow_the_banner_into_new_channels(client, server):
    banner, target, friend = uid("bnr"), uid("tgt"), uid("frd")
    client.upsert_users([{"id": banner}, {"id": target}, {"id": friend}])
    first = client.channel("messaging", uid("fc"), {"members": [banner, target]})
    first.create(banner)
    first.ban_user(target, banned_by_id=banner, ban_from_future_channels=True, reason="troll")
    listed = client.get(
        "query_future_channel_bans", params={"payload": json.dumps({"user_id": banner})}
    )["bans"]
    assert [(b["user"]["id"], b.get("reason")) for b in listed] == [(target, "troll")], listed
    # A channel the banner creates later starts with the target banned.
    later = client.channel("messaging", uid("fc"), {"members": [banner, target, friend]})
    later.create(banner)
    state = later.query()
    assert member_of(state, target)["banned"] is True
    with pytest.raises(StreamAPIException) as refused:
        later.send_message({"text": "hi"}, target)
    assert refused.value.status_code == 403
    # Someone else's new channel: no ban there.
    elsewhere = client.channel("messaging", uid("fc"), {"members": [friend, target]})
    elsewhere.create(friend)
    assert elsewhere.send_message({"text": "hi"}, target)["message"]["type"] == "regular"
    # Lifting it: new channels no longer ban the target.
    client.unban_user(target, type="messaging", id=first.id, user_id=banner, remove_future_channels_ban=True)
    assert client.get(
        "query_future_channel_bans", params={"payload": json.dumps({"user_id": banner})}
    )["bans"] == []
    fresh = client.channel("messaging", uid("fc"), {"members": [banner, target]})
    fresh.create(banner)
    assert fresh.send_message({"text": "hi again"}, target)["message"]["type"] == "regular"
