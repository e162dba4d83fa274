"""Message search through the official Python SDK: text queries, message filters, sorts and both
kinds of paging, and what search never returns."""

import uuid

import pytest
from stream_chat.base.exceptions import StreamAPIException


def uid(prefix="u"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def author(client):
    i = uid("s")
    client.upsert_users([{"id": i}])
    return i


@pytest.fixture
def channel(client, author):
    ch = client.channel("messaging", uid("search"), {"members": [author]})
    ch.create(author)
    return ch


def test_search_by_text(client, channel, author):
    query = "supercalifragilisticexpialidocious" + uuid.uuid4().hex[:6]
    channel.send_message({"text": f"How many syllables are there in {query}?"}, author)
    channel.send_message({"text": "Does 'cious' count as one or two?"}, author)
    r = client.search({"cid": channel.cid}, query, limit=2, offset=0)
    assert len(r["results"]) == 1
    assert query in r["results"][0]["message"]["text"]
    assert r["results"][0]["message"]["channel"]["cid"] == channel.cid
    r = client.search({"cid": channel.cid}, "cious", limit=12, offset=0)
    assert all(query not in x["message"]["text"] for x in r["results"])
    r = client.search({"cid": channel.cid}, {"text": {"$q": query}}, limit=2, offset=0)
    assert len(r["results"]) == 1


def test_search_with_sort_and_cursors(client, channel, author):
    text = str(uuid.uuid4())
    ids = ["0" + text, "1" + text]
    channel.send_message({"text": text, "id": ids[0]}, author)
    channel.send_message({"text": text, "id": ids[1]}, author)
    r = client.search({"type": "messaging"}, text, limit=1, sort=[{"created_at": -1}])
    assert r["next"] is not None and ids[1] == r["results"][0]["message"]["id"]
    r = client.search({"type": "messaging"}, text, limit=1, next=r["next"])
    assert r["previous"] is not None and r.get("next") is None
    assert ids[0] == r["results"][0]["message"]["id"]
    back = client.search({"type": "messaging"}, text, limit=1, next=r["previous"])
    assert back["results"][0]["message"]["id"] == ids[1]
    with pytest.raises(ValueError):
        client.search({"type": "messaging"}, text, limit=2, offset=1, sort=[{"created_at": -1}])


def test_search_message_filters(client, channel, author):
    friend = uid("friend")
    client.upsert_users([{"id": friend}])
    tag = uuid.uuid4().hex[:8]
    channel.send_message({"text": f"plain {tag}", "rank": 1}, author)
    channel.send_message({"text": f"with file {tag}", "rank": 3, "attachments": [{"type": "file"}]}, author)
    channel.send_message({"text": f"mention {tag}", "rank": 2, "mentioned_users": [friend]}, author)
    find = lambda f, **o: [x["message"]["text"] for x in client.search({"cid": channel.cid}, f, **o)["results"]]
    assert find({"attachments": {"$exists": True}}) == [f"with file {tag}"]
    assert find({"attachments.type": "file"}) == [f"with file {tag}"]
    assert find({"mentioned_users.id": {"$contains": friend}}) == [f"mention {tag}"]
    assert find({"rank": {"$gte": 2}}, sort=[{"rank": 1}]) == [f"mention {tag}", f"with file {tag}"]
    assert find({"text": {"$autocomplete": "menti"}}) == [f"mention {tag}"]
    assert len(find({"user.id": author})) == 3


def test_search_leaves_out_system_deleted_and_unreadable(client, server, channel, author):
    tag = uuid.uuid4().hex[:8]
    channel.send_message({"text": f"system {tag}", "type": "system"}, author)
    gone = channel.send_message({"text": f"deleted {tag}"}, author)["message"]
    client.delete_message(gone["id"])
    channel.send_message({"text": f"kept {tag}"}, author)
    assert [x["message"]["text"] for x in client.search({"cid": channel.cid}, tag)["results"]] == [f"kept {tag}"]
    outsider = uid("out")
    client.upsert_users([{"id": outsider}])
    import json

    r = server.request("GET", "/search", token=server.user_token(outsider), params={"payload": json.dumps({"filter_conditions": {"cid": channel.cid}, "query": tag})})
    assert r.status_code == 200 and r.json()["results"] == []


def test_search_needs_a_channel_filter_and_a_query(client):
    with pytest.raises(StreamAPIException):
        client.search({}, "x")
    with pytest.raises(StreamAPIException):
        client.search({"type": "messaging"}, {})
    with pytest.raises(StreamAPIException):
        client.search({"type": "messaging"}, "x", limit=101)


def test_search_respects_the_type_setting(client, author):
    name = "ns" + uuid.uuid4().hex[:8]
    client.create_channel_type({"name": name, "search": False})
    ch = client.channel(name, uid("ch"), {"members": [author]})
    ch.create(author)
    tag = uuid.uuid4().hex
    ch.send_message({"text": tag}, author)
    assert client.search({"cid": ch.cid}, tag)["results"] == []
