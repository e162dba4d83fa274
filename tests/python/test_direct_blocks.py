"""What a block does to 1:1 channels, through the official Python SDK (server side acting as
the users): the blocking user's 1:1 channels with the blocked user leave their list (and come
back, marked `blocked: true`, when hidden channels are asked for), the blocked user can no
longer send there but still can in group channels, cannot add the blocking user to channels,
and unblocking undoes it."""

import uuid

import pytest
from stream_chat.base.exceptions import StreamAPIException


def uid(prefix="u"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def scene(client):
    ann, bob, cat = uid("ann"), uid("bob"), uid("cat")
    client.upsert_users([{"id": ann}, {"id": bob}, {"id": cat}])
    direct = client.channel("messaging", uid("dm"), data={"members": [ann, bob], "created_by_id": ann})
    direct.create(ann)
    group = client.channel("messaging", uid("grp"), data={"members": [ann, bob, cat], "created_by_id": cat})
    group.create(cat)
    direct.send_message({"text": "hi"}, bob)
    return ann, bob, cat, direct, group


def listed(client, user, **filters):
    found = client.query_channels({"members": {"$in": [user]}, **filters}, user_id=user)
    return {c["channel"]["cid"]: c["channel"] for c in found["channels"]}


def test_blocking_hides_the_direct_channel_for_the_blocker_only(client, scene):
    ann, bob, _, direct, group = scene
    client.block_user(bob, ann)
    mine = listed(client, ann)
    assert direct.cid not in mine and group.cid in mine
    hidden = listed(client, ann, hidden=True)
    assert hidden[direct.cid].get("blocked") is True, hidden[direct.cid]
    # The blocked user still sees the channel, not marked.
    theirs = listed(client, bob)
    assert direct.cid in theirs and "blocked" not in theirs[direct.cid]
    assert "blocked" not in mine[group.cid]
    client.unblock_user(bob, ann)
    again = listed(client, ann)
    assert direct.cid in again and "blocked" not in again[direct.cid]


def test_the_blocked_user_cannot_send_in_the_direct_channel(client, scene):
    ann, bob, _, direct, group = scene
    client.block_user(bob, ann)
    with pytest.raises(StreamAPIException) as refused:
        direct.send_message({"text": "let me explain"}, bob)
    assert refused.value.error_code == 17
    assert refused.value.status_code == 403
    # Group channels are unaffected; the blocker may still write in the direct channel.
    group.send_message({"text": "hello all"}, bob)
    direct.send_message({"text": "bye"}, ann)
    client.unblock_user(bob, ann)
    direct.send_message({"text": "sorry"}, bob)


def test_the_blocked_user_cannot_add_the_blocker(client, scene):
    ann, bob, cat, _, _ = scene
    client.block_user(bob, ann)
    made = client.channel("messaging", uid("new"), data={"members": [bob, ann, cat], "created_by_id": bob})
    state = made.create(bob)
    assert sorted(m["user_id"] for m in state["members"]) == sorted([bob, cat])
    other = client.channel("messaging", uid("more"), data={"members": [bob], "created_by_id": bob})
    other.create(bob)
    other.add_members([ann, cat], user_id=bob)
    members = other.query_members({})
    assert sorted(m["user_id"] for m in members) == sorted([bob, cat])
    # Someone else may still add them.
    other.add_members([ann])
    assert ann in [m["user_id"] for m in other.query_members({})]
