"""Client-side channel access with user tokens over raw HTTP (as the client SDKs send it):
permission checks, disabled/frozen channels, and own_capabilities per role."""

import uuid

import pytest


def uid(prefix="u"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def people(client):
    p = {"owner": uid("owner"), "member": uid("mem"), "mod": uid("mod"), "admin": uid("adm"), "outsider": uid("out")}
    client.upsert_users(
        [
            {"id": p["owner"]},
            {"id": p["member"]},
            {"id": p["mod"]},
            {"id": p["admin"], "role": "admin"},
            {"id": p["outsider"]},
        ]
    )
    return p


@pytest.fixture
def messaging(client, people):
    ch = client.channel("messaging", uid("perm"), {"members": [people["owner"], people["member"]]})
    ch.create(people["owner"])
    ch.add_moderators([people["mod"]])
    return ch


def query_as(server, user_id, ch, **body):
    return server.request("POST", f"/channels/{ch.channel_type}/{ch.id}/query", token=server.user_token(user_id), json={"state": True, **body})


def caps(server, user_id, ch):
    r = query_as(server, user_id, ch)
    assert r.status_code == 200, r.text
    return set(r.json()["channel"]["own_capabilities"])


def test_member_reads_and_non_member_is_refused(server, people, messaging):
    r = query_as(server, people["member"], messaging)
    assert r.status_code == 200
    assert "send-message" in r.json()["channel"]["own_capabilities"]
    assert r.json()["membership"]["user_id"] == people["member"]
    r = query_as(server, people["outsider"], messaging)
    assert r.status_code == 403
    assert r.json()["code"] == 17


def test_client_query_channels_lists_only_readable_channels(server, people, messaging):
    r = server.request("POST", "/channels", token=server.user_token(people["outsider"]), json={"filter_conditions": {"cid": messaging.cid}})
    assert r.status_code == 200 and r.json()["channels"] == []
    r = server.request("POST", "/channels", token=server.user_token(people["member"]), json={"filter_conditions": {"cid": messaging.cid}})
    assert [c["channel"]["cid"] for c in r.json()["channels"]] == [messaging.cid]
    # without a filter a client sees its own channels
    r = server.request("POST", "/channels", token=server.user_token(people["member"]), json={"filter_conditions": {}})
    assert messaging.cid in [c["channel"]["cid"] for c in r.json()["channels"]]


def test_anonymous_reads_livestream_and_cannot_write(server, client, people):
    ls = client.channel("livestream", uid("live"))
    ls.create(people["admin"])
    r = server.request("POST", f"/channels/livestream/{ls.id}/query", auth_type="anonymous", json={"state": True})
    assert r.status_code == 200, r.text
    own = set(r.json()["channel"]["own_capabilities"])
    assert "send-message" not in own and "update-channel" not in own
    r = server.request("POST", f"/channels/livestream/{ls.id}", auth_type="anonymous", json={"data": {"name": "x"}})
    assert r.status_code == 403
    r = server.request("POST", "/channels/livestream/" + uid("new") + "/query", auth_type="anonymous", json={})
    assert r.status_code == 403


def test_capabilities_differ_by_role_as_the_grants_imply(server, people, messaging):
    member, mod, admin, owner = (caps(server, people[k], messaging) for k in ("member", "mod", "admin", "owner"))
    for c in (member, mod, admin, owner):
        assert {"read-events", "send-message", "send-reaction", "update-own-message"} <= c
        # calls are not built yet: never advertised; uploads are, for every role here
        assert not {"create-call", "join-call"} & c
        assert "upload-file" in c
        # everyone here may flag messages (the flag-message grants)
        assert "flag-message" in c
    # moderation belongs to channel moderators and admins
    for cap in ("delete-any-message", "update-any-message", "freeze-channel", "skip-slow-mode", "set-channel-cooldown",
                "ban-channel-members"):
        assert cap in mod and cap in admin, cap
        assert cap not in member and cap not in owner, cap
    # deleting the channel: its owner and admins, not a plain member or a channel moderator
    assert "delete-channel" in owner and "delete-channel" in admin
    assert "delete-channel" not in member and "delete-channel" not in mod
    # members may leave; an admin who is not a member has nothing to leave
    assert "leave-channel" in member and "leave-channel" not in admin


def test_frozen_channel_takes_away_sending(client, server, people, messaging):
    messaging.update_partial(to_set={"frozen": True})
    member = caps(server, people["member"], messaging)
    assert "send-message" not in member and "send-reaction" not in member
    # by default no role may use a frozen channel; a channel-level grant changes that
    assert "send-message" not in caps(server, people["admin"], messaging)
    messaging.update_partial(to_set={"config_overrides": {"grants": {"admin": ["use-frozen-channel"]}}})
    assert "send-message" in caps(server, people["admin"], messaging)
    assert "send-message" not in caps(server, people["member"], messaging)


def test_disabled_channel_is_forbidden_to_clients_but_queryable_server_side(client, server, people, messaging):
    messaging.update_partial(to_set={"disabled": True})
    assert query_as(server, people["member"], messaging).status_code == 403
    r = server.request("POST", f"/channels/messaging/{messaging.id}", token=server.user_token(people["owner"]), json={"data": {"name": "x"}})
    assert r.status_code == 403
    assert client.query_channels({"cid": messaging.cid, "disabled": True})["channels"]


def test_client_updates_follow_grants(server, people, messaging):
    tok = server.user_token
    path = f"/channels/messaging/{messaging.id}"
    r = server.request("PATCH", path, token=tok(people["outsider"]), json={"set": {"name": "x"}})
    assert r.status_code == 403
    r = server.request("PATCH", path, token=tok(people["owner"]), json={"set": {"name": "renamed"}})
    assert r.status_code == 200 and r.json()["channel"]["name"] == "renamed"
    # server-only settings and roles
    r = server.request("PATCH", path, token=tok(people["owner"]), json={"set": {"config_overrides": {"replies": False}}})
    assert r.status_code == 403
    r = server.request("POST", path, token=tok(people["owner"]), json={"add_moderators": [people["member"]]})
    assert r.status_code == 403
    # a member leaves on their own
    r = server.request("POST", path, token=tok(people["member"]), json={"remove_members": [people["member"]]})
    assert r.status_code == 200
    assert people["member"] not in [m["user_id"] for m in r.json()["members"]]


def test_client_creates_channel_where_granted(server, people):
    cid_id = uid("mine")
    r = server.request(
        "POST", f"/channels/messaging/{cid_id}/query", token=server.user_token(people["member"]), json={"data": {"members": [people["member"], people["outsider"]]}}
    )
    assert r.status_code == 201 or r.status_code == 200, r.text
    assert r.json()["channel"]["created_by"]["id"] == people["member"]
    # a client cannot hand out channel roles
    r = server.request(
        "POST",
        f"/channels/messaging/{uid('mine')}/query",
        token=server.user_token(people["member"]),
        json={"data": {"members": [{"user_id": people["outsider"], "channel_role": "channel_moderator"}]}},
    )
    assert r.status_code == 403


def test_members_mute_and_hide_for_themselves(server, people, messaging):
    tok = server.user_token(people["member"])
    r = server.request("POST", "/moderation/mute/channel", token=tok, json={"channel_cid": messaging.cid})
    assert r.status_code == 200, r.text
    assert r.json()["channel_mute"]["user"]["id"] == people["member"]
    r = server.request("POST", f"/channels/messaging/{messaging.id}/hide", token=tok, json={})
    assert r.status_code == 200
    r = server.request("POST", "/channels", token=tok, json={"filter_conditions": {"cid": messaging.cid}})
    assert r.json()["channels"] == []
    r = server.request("POST", "/channels", token=tok, json={"filter_conditions": {"cid": messaging.cid, "muted": True, "hidden": True}})
    assert len(r.json()["channels"]) == 1
    # another member's membership is not theirs to change
    r = server.request("PATCH", f"/channels/messaging/{messaging.id}/member/{people['owner']}", token=tok, json={"set": {"pinned": True}})
    assert r.status_code == 403


def test_sending_follows_grants_and_frozen_answers_with_an_error_message(server, people, messaging):
    path = f"/channels/messaging/{messaging.id}/message"
    r = server.request("POST", path, token=server.user_token(people["member"]), json={"message": {"text": "hello"}})
    assert r.status_code == 201 or r.status_code == 200, r.text
    assert r.json()["message"]["user"]["id"] == people["member"]
    r = server.request("POST", path, token=server.user_token(people["outsider"]), json={"message": {"text": "hello"}})
    assert r.status_code == 403
    r = server.request("POST", path, token=server.user_token(people["member"]), json={"message": {"text": "sys", "type": "system"}})
    assert r.status_code == 403
    messaging.update_partial(to_set={"frozen": True})
    r = server.request("POST", path, token=server.user_token(people["member"]), json={"message": {"text": "frozen?"}})
    assert r.status_code == 200 and r.json()["message"]["type"] == "error"
    texts = [m["text"] for m in messaging.query()["messages"]]
    assert texts == ["hello"]
