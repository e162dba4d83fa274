"""Read state and unread counts through the official Python SDK: mark read / unread / all read,
unread counts per channel and per user, what does not count, read receipts and delivery."""

import uuid

import pytest
from stream_chat.base.exceptions import StreamAPIException


def uid(prefix="u"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def trio(client):
    ids = [uid("r") for _ in range(3)]
    client.upsert_users([{"id": i} for i in ids])
    return ids


@pytest.fixture
def channel(client, trio):
    ch = client.channel("messaging", uid("read"), {"members": trio})
    ch.create(trio[0])
    return ch


def reads(state):
    return {r["user"]["id"]: r for r in state["read"]}


def send(ch, user, text, **extra):
    return ch.send_message({"text": text, **extra}, user)["message"]


def test_unread_counts_follow_messages_and_reads(client, channel, trio):
    a, b, c = trio
    ids = [send(channel, a, f"m{i}")["id"] for i in range(3)]
    r = reads(channel.query())
    assert r[a]["unread_messages"] == 0 and r[a]["last_read_message_id"] == ids[-1]
    assert r[b]["unread_messages"] == 3 and r[c]["unread_messages"] == 3
    counts = client.unread_counts(b)
    assert counts["total_unread_count"] == 3
    assert [ch["channel_id"] for ch in counts["channels"] if ch["unread_count"]] == [channel.cid]
    assert counts["channel_type"][0]["channel_type"] == "messaging"
    event = channel.mark_read(b)["event"]
    assert event["type"] == "message.read" and event["user"]["id"] == b
    assert event["last_read_message_id"] == ids[-1]
    assert reads(channel.query())[b]["unread_messages"] == 0
    assert client.unread_counts(b)["total_unread_count"] == 0
    # reading up to a message leaves the later ones unread
    channel.mark_read(c, message_id=ids[0])
    assert reads(channel.query())[c]["unread_messages"] == 2
    # marking unread moves back
    channel.mark_unread(b, message_id=ids[1])
    r = reads(channel.query())[b]
    assert r["unread_messages"] == 2 and r["last_read_message_id"] == ids[0]
    batch = client.unread_counts_batch([b, c])["counts_by_user"]
    assert batch[b]["total_unread_count"] == 2 and batch[c]["total_unread_count"] == 2


def test_what_does_not_count(client, channel, trio):
    a, b, _ = trio
    parent = send(channel, a, "counted")
    send(channel, a, "quiet", silent=True)
    send(channel, a, "thread only", parent_id=parent["id"])
    send(channel, a, "shown reply", parent_id=parent["id"], show_in_channel=True)
    assert reads(channel.query())[b]["unread_messages"] == 2
    channel.mute(b)
    assert client.unread_counts(b)["total_unread_count"] == 0
    channel.unmute(b)
    assert client.unread_counts(b)["total_unread_count"] == 2
    # a pending invite does not count; a member added later starts at zero
    guest, late = uid("inv"), uid("late")
    client.upsert_users([{"id": guest}, {"id": late}])
    channel.invite_members([guest])
    channel.add_members([late])
    send(channel, a, "after")
    assert client.unread_counts(guest)["total_unread_count"] == 0
    assert client.unread_counts(late)["total_unread_count"] == 1


def test_mark_all_read(client, trio):
    a, b, _ = trio
    chans = [client.channel("messaging", uid("all"), {"members": [a, b]}) for _ in range(2)]
    for ch in chans:
        ch.create(a)
        send(ch, a, "hello")
    assert client.unread_counts(b)["total_unread_count"] == 2
    client.mark_all_read(b)
    assert client.unread_counts(b)["total_unread_count"] == 0


def test_mark_unread_limits(channel, trio):
    a, b, _ = trio
    first = send(channel, a, "first")
    for i in range(100):
        send(channel, a, f"n{i}")
    with pytest.raises(StreamAPIException):
        channel.mark_unread(b, message_id=first["id"])
    with pytest.raises(StreamAPIException):
        channel.mark_unread(b)
    with pytest.raises(StreamAPIException):
        channel.mark_read(uid("stranger"))


def test_private_read_receipts(client, channel, trio):
    a, b, c = trio
    client.upsert_user({"id": c, "privacy_settings": {"read_receipts": {"enabled": False}}})
    send(channel, a, "x")
    channel.mark_read(c)
    others_view = client.query_channels({"cid": channel.cid}, user_id=a)["channels"][0]
    assert c not in reads(others_view)
    own_view = client.query_channels({"cid": channel.cid}, user_id=c)["channels"][0]
    assert reads(own_view)[c]["unread_messages"] == 0


def test_delivery_receipts(client, trio):
    a, b, _ = trio
    name = "dl" + uuid.uuid4().hex[:8]
    client.create_channel_type({"name": name, "delivery_events": True})
    ch = client.channel(name, uid("dl"), {"members": [a, b]})
    ch.create(a)
    m = send(ch, a, "deliver me")
    client.mark_delivered_simple(b, m["id"], ch.cid)
    r = reads(ch.query())[b]
    assert r["last_delivered_message_id"] == m["id"] and r["last_delivered_at"]
    # a type without delivery events ignores it (and ids that do not exist are accepted)
    plain = client.channel("messaging", uid("nd"), {"members": [a, b]})
    plain.create(a)
    client.mark_delivered_simple(b, "missing-id", plain.cid)
    assert "last_delivered_message_id" not in reads(plain.query())[b]


def test_query_channels_by_unread(client, trio):
    a, b, _ = trio
    quiet = client.channel("messaging", uid("q"), {"members": [a, b]})
    quiet.create(a)
    busy = client.channel("messaging", uid("q"), {"members": [a, b]})
    busy.create(a)
    some = client.channel("messaging", uid("q"), {"members": [a, b]})
    some.create(a)
    for _ in range(3):
        send(busy, a, "x")
    send(some, a, "y")
    cids = [quiet.cid, busy.cid, some.cid]
    r = client.query_channels({"cid": {"$in": cids}, "has_unread": True}, user_id=b)
    assert sorted(c["channel"]["cid"] for c in r["channels"]) == sorted([busy.cid, some.cid])
    r = client.query_channels({"cid": {"$in": cids}}, sort=[{"field": "unread_count", "direction": -1}], user_id=b)
    assert [c["channel"]["cid"] for c in r["channels"]][:2] == [busy.cid, some.cid]
