"""Threads through the official Python SDK: query threads (filters, sorts, paging), get and
update a thread, participants and their unread replies."""

import uuid

import pytest
from stream_chat.base.exceptions import StreamAPIException


def uid(prefix="u"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pair(client):
    ids = [uid("t"), uid("t")]
    client.upsert_users([{"id": i} for i in ids])
    return ids


@pytest.fixture
def channel(client, pair):
    ch = client.channel("messaging", uid("threads"), {"members": pair})
    ch.create(pair[0])
    return ch


def test_query_threads(client, channel, pair):
    a, _ = pair
    parent = channel.send_message({"text": "Parent message"}, a)["message"]
    reply = channel.send_message({"text": "Thread message", "parent_id": parent["id"]}, a)["message"]
    r = client.query_threads(filter={"parent_message_id": parent["id"]}, sort=[{"field": "created_at", "direction": -1}], user_id=a)
    assert len(r["threads"]) == 1
    t = r["threads"][0]
    assert t["parent_message_id"] == parent["id"] and t["channel_cid"] == channel.cid
    assert t["parent_message"]["text"] == "Parent message"
    assert t["latest_replies"][0]["text"] == reply["text"]
    assert t["reply_count"] == 1 and t["participant_count"] == 1
    assert t["created_by"]["id"] == a


def test_query_threads_paging_and_sorts(client, channel, pair):
    a, _ = pair
    parents = []
    for i in range(3):
        p = channel.send_message({"text": f"Parent message {i}"}, a)["message"]
        channel.send_message({"text": f"Thread message {i}", "parent_id": p["id"]}, a)
        parents.append(p["id"])
    r = client.query_threads(filter={"channel_cid": channel.cid}, sort=[{"field": "created_at", "direction": -1}], limit=1, user_id=a)
    assert len(r["threads"]) == 1 and "next" in r
    assert r["threads"][0]["parent_message_id"] == parents[2]
    r2 = client.query_threads(filter={"channel_cid": channel.cid}, sort=[{"field": "created_at", "direction": -1}], limit=1, next=r["next"], user_id=a)
    assert r2["threads"][0]["parent_message_id"] == parents[1]
    # replying moves a thread up the default sort (newest reply first)
    channel.send_message({"text": "bump", "parent_id": parents[0]}, a)
    r = client.query_threads(filter={"channel_cid": channel.cid}, user_id=a)
    assert r["threads"][0]["parent_message_id"] == parents[0]
    with pytest.raises(StreamAPIException):
        client.query_threads(filter={"channel_cid": channel.cid}, sort=[{"field": "created_at", "direction": -1}, {"field": "reply_count", "direction": 1}], user_id=a)
    with pytest.raises(StreamAPIException):
        client.query_threads(filter={"text": "x"}, user_id=a)


def test_participants_and_unread_replies(client, channel, pair):
    a, b = pair
    parent = channel.send_message({"text": "question"}, a)["message"]
    channel.send_message({"text": "answer 1", "parent_id": parent["id"]}, b)
    channel.send_message({"text": "answer 2", "parent_id": parent["id"]}, b)
    t = client.query_threads(filter={"parent_message_id": parent["id"]}, user_id=a)["threads"][0]
    assert sorted(p["user_id"] for p in t["thread_participants"]) == sorted([a, b])
    reads = {r["user"]["id"]: r["unread_messages"] for r in t["read"]}
    assert reads[a] == 2 and reads[b] == 0
    counts = client.unread_counts(a)
    assert counts["total_unread_threads_count"] == 1
    assert counts["threads"][0]["parent_message_id"] == parent["id"]
    channel.mark_read(a, thread_id=parent["id"])
    assert client.unread_counts(a)["total_unread_threads_count"] == 0
    channel.mark_unread(a, thread_id=parent["id"])
    assert client.unread_counts(a)["threads"][0]["unread_count"] == 1
    # thread replies do not count for the channel
    assert {r["user"]["id"]: r["unread_messages"] for r in channel.query()["read"]}[b] == 1


def test_get_and_update_thread(client, channel, pair):
    a, _ = pair
    parent = channel.send_message({"text": "p"}, a)["message"]
    for i in range(4):
        channel.send_message({"text": f"r{i}", "parent_id": parent["id"]}, a)
    t = client.get(f"threads/{parent['id']}", params={"reply_limit": 3})["thread"]
    assert [m["text"] for m in t["latest_replies"]] == ["r1", "r2", "r3"]
    r = client.patch(f"threads/{parent['id']}", data={"set": {"title": "New Title", "extra": {"a": 1}}})
    assert r["thread"]["title"] == "New Title" and r["thread"]["extra"] == {"a": 1}
    r = client.patch(f"threads/{parent['id']}", data={"unset": ["extra"]})
    assert "extra" not in r["thread"]
    with pytest.raises(StreamAPIException):
        client.patch(f"threads/{parent['id']}", data={"set": {"reply_count": 9}})
    with pytest.raises(StreamAPIException):
        client.get(f"threads/no-such-{uuid.uuid4().hex}")
