"""Muting and blocking users through the official Python SDK (server side), against chat-local."""

import uuid

import pytest
from stream_chat.base.exceptions import StreamAPIException


def uid(prefix="u"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def people(client):
    ids = [uid("p") for _ in range(3)]
    client.upsert_users([{"id": i, "name": f"name {i}"} for i in ids])
    return ids


def test_mute_user_and_unmute(client, people):
    me, target = people[0], people[1]
    response = client.mute_user(target, me)
    assert "expires" not in response["mute"]
    assert response["mute"]["target"]["id"] == target
    assert response["mute"]["user"]["id"] == me
    assert [m["target"]["id"] for m in response["own_user"]["mutes"]] == [target]
    client.unmute_user(target, me)
    again = client.mute_user(people[2], me)
    assert [m["target"]["id"] for m in again["own_user"]["mutes"]] == [people[2]]


def test_mute_users_and_timeout(client, people):
    me, targets = people[0], people[1:]
    response = client.mute_users(targets, me)
    assert sorted(m["target"]["id"] for m in response["mutes"]) == sorted(targets)
    assert all(m["user"]["id"] == me for m in response["mutes"])
    client.unmute_users(targets, me)
    timed = client.mute_user(targets[0], me, timeout=10)
    assert "expires" in timed["mute"]


def test_mute_needs_a_known_target_and_a_sane_timeout(client, people):
    with pytest.raises(StreamAPIException) as e:
        client.mute_user(uid("ghost"), people[0])
    assert e.value.status_code == 404
    with pytest.raises(StreamAPIException) as e:
        client.mute_user(people[1], people[0], timeout=-5)
    assert "timeout" in str(e.value)
    with pytest.raises(StreamAPIException):
        client.mute_user(people[0], people[0])


def test_block_unblock_and_list(client, people):
    me, other = people[0], people[1]
    response = client.block_user(other, me)
    assert response["blocked_user_id"] == other
    assert response["blocked_by_user_id"] == me
    blocks = client.get_blocked_users(me)["blocks"]
    assert [(b["user_id"], b["blocked_user_id"], b["blocked_user"]["id"]) for b in blocks] == [(me, other, other)]
    client.unblock_user(other, me)
    assert client.get_blocked_users(me)["blocks"] == []


def test_me_carries_mutes_and_blocked_user_ids(client, people, server):
    """What the WebSocket hello gives the user: their mutes and blocked users."""
    me = people[0]
    client.mute_user(people[1], me)
    client.block_user(people[2], me)
    ws, hello = server.connect_socket(me)
    ws.close()
    assert [m["target"]["id"] for m in hello["me"]["mutes"]] == [people[1]]
    assert hello["me"]["blocked_user_ids"] == [people[2]]


def test_a_blocked_users_messages_are_not_shown_to_who_blocked_them(client, people, server):
    """Blocks in reads: channel state, query channels, replies and search leave out what a
    blocked user wrote, for the user who blocked them only; unblocking shows it again."""
    me, blocked, third = people
    ch = client.channel("messaging", uid("blk"), {"members": [me, blocked, third]})
    ch.create(me)
    mine = ch.send_message({"text": "hello all"}, me)["message"]
    theirs = ch.send_message({"text": "hello blockhead"}, blocked)["message"]
    reply = ch.send_message({"text": "a reply blockhead", "parent_id": mine["id"]}, blocked)["message"]
    client.block_user(blocked, me)

    def seen(user):
        token = server.user_token(user)
        state = server.request("POST", f"/channels/messaging/{ch.id}/query", token=token, json={}).json()
        listed = server.request(
            "POST", "/channels", token=token, json={"filter_conditions": {"cid": ch.cid}, "sort": []}
        ).json()["channels"][0]
        replies = server.request("GET", f"/messages/{mine['id']}/replies", token=token).json()
        found = server.request(
            "GET",
            "/search",
            token=token,
            params={"payload": '{"filter_conditions": {"cid": "%s"}, "query": "blockhead"}' % ch.cid},
        ).json()
        return {
            "state": [m["id"] for m in state["messages"]],
            "query channels": [m["id"] for m in listed["messages"]],
            "replies": [m["id"] for m in replies["messages"]],
            "search": [r["message"]["id"] for r in found["results"]],
        }

    mine_view, third_view = seen(me), seen(third)
    assert mine_view == {"state": [mine["id"]], "query channels": [mine["id"]], "replies": [], "search": []}, mine_view
    assert theirs["id"] in third_view["state"] and third_view["replies"] == [reply["id"]], third_view
    assert sorted(third_view["search"]) == sorted([theirs["id"], reply["id"]]), third_view
    # The server reads everything.
    assert client.get_message(theirs["id"])["message"]["text"] == "hello blockhead"
    client.unblock_user(blocked, me)
    assert theirs["id"] in seen(me)["state"]
