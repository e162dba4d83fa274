"""Messages through the official Python SDK (server side) and user tokens: send, read one or
several, full and partial update, pin, soft and hard delete."""

import uuid

import pytest
from stream_chat.base.exceptions import StreamAPIException


def uid(prefix="u"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def author(client):
    i = uid("author")
    client.upsert_users([{"id": i, "name": "Author"}])
    return i


@pytest.fixture
def channel(client, author):
    ch = client.channel("messaging", uid("ch"), {"members": [author]})
    ch.create(author)
    return ch


def test_send_and_get_message(client, channel, author):
    r = channel.send_message({"text": "hi", "color": "red"}, author, skip_push=True)
    m = r["message"]
    assert m["text"] == "hi" and m["color"] == "red" and m["type"] == "regular"
    assert m["user"]["id"] == author and m["cid"] == channel.cid
    assert m["latest_reactions"] == [] and m["reaction_counts"] == {}
    got = client.get_message(m["id"])["message"]
    assert got["id"] == m["id"] and got["text"] == "hi" and got["shadowed"] is False
    with pytest.raises(StreamAPIException) as err:
        client.get_message("no-such-" + uuid.uuid4().hex)
    assert err.value.error_code == 16


def test_get_messages_by_ids(channel, author):
    ids = [channel.send_message({"text": f"t{i}"}, author)["message"]["id"] for i in range(3)]
    r = channel.get_messages([ids[2], ids[0], "missing"])
    assert [m["id"] for m in r["messages"]] == [ids[2], ids[0]]


def test_full_update_replaces_text_and_custom_fields(client, channel, author):
    m = channel.send_message({"text": "v1", "color": "red"}, author)["message"]
    r = client.update_message({"id": m["id"], "text": "v2", "size": 3, "user_id": author})
    u = r["message"]
    assert u["text"] == "v2" and u["size"] == 3 and "color" not in u
    assert u["message_text_updated_at"]
    assert client.get_message(m["id"])["message"]["text"] == "v2"
    with pytest.raises(StreamAPIException):
        client.update_message({"id": m["id"], "text": "x" * 5001})


def test_partial_update(client, channel, author):
    m = channel.send_message({"text": "v1", "meta": {"a": 1}, "old": True}, author)["message"]
    r = client.update_message_partial(m["id"], {"set": {"text": "v2", "meta.b": 2}, "unset": ["old"]}, author)
    u = r["message"]
    assert u["text"] == "v2" and u["meta"] == {"a": 1, "b": 2} and "old" not in u
    with pytest.raises(StreamAPIException):
        client.update_message_partial(m["id"], {"set": {"user_id": "someone"}}, author)


def test_pin_and_unpin(client, channel, author):
    m = channel.send_message({"text": "pin me"}, author)["message"]
    r = client.pin_message(m["id"], author)
    assert r["message"]["pinned"] is True
    assert r["message"]["pinned_at"]
    assert r["message"]["pinned_by"]["id"] == author
    r = client.pin_message(m["id"], author, expiration=3600)
    assert r["message"]["pin_expires"]
    r = client.unpin_message(m["id"], author)
    assert r["message"]["pinned"] is False
    assert r["message"]["pinned_at"] is None and r["message"]["pinned_by"] is None


def test_soft_and_hard_delete(client, channel, author):
    soft = channel.send_message({"text": "soft"}, author)["message"]
    r = client.delete_message(soft["id"])
    assert r["message"]["type"] == "deleted" and r["message"]["deleted_at"]
    assert client.get_message(soft["id"])["message"]["text"] == ""
    assert client.get_message(soft["id"], show_deleted_message=True)["message"]["text"] == "soft"
    with pytest.raises(StreamAPIException):
        client.update_message({"id": soft["id"], "text": "back"})
    hard = channel.send_message({"text": "hard"}, author)["message"]
    client.delete_message(hard["id"], hard=True)
    with pytest.raises(StreamAPIException):
        client.get_message(hard["id"])
    state = channel.query()
    assert [(m["id"], m["type"]) for m in state["messages"]] == [(soft["id"], "deleted")]


def test_client_side_ownership(client, server, channel, author):
    other = uid("other")
    client.upsert_users([{"id": other}])
    channel.add_members([other])
    m = channel.send_message({"text": "mine"}, author)["message"]
    tok_other = server.user_token(other)
    tok_author = server.user_token(author)
    r = server.request("POST", f"/messages/{m['id']}", token=tok_other, json={"message": {"id": m["id"], "text": "hijack"}})
    assert r.status_code == 403
    r = server.request("DELETE", f"/messages/{m['id']}", token=tok_other)
    assert r.status_code == 403
    r = server.request("POST", f"/messages/{m['id']}", token=tok_author, json={"message": {"id": m["id"], "text": "edited"}})
    assert r.status_code == 200 and r.json()["message"]["text"] == "edited"
    r = server.request("GET", f"/messages/{m['id']}", token=tok_other)
    assert r.status_code == 200
    outsider = uid("out")
    client.upsert_users([{"id": outsider}])
    r = server.request("GET", f"/messages/{m['id']}", token=server.user_token(outsider))
    assert r.status_code == 403
    r = server.request("DELETE", f"/messages/{m['id']}", token=tok_author)
    assert r.status_code == 200 and r.json()["message"]["type"] == "deleted"


def test_attachments_mentions_and_limits(client, channel, author):
    friend = uid("friend")
    client.upsert_users([{"id": friend, "name": "Friend"}])
    m = channel.send_message(
        {"text": "look", "attachments": [{"type": "image", "image_url": "https://example.com/a.png"}], "mentioned_users": [friend]}, author
    )["message"]
    assert m["attachments"][0]["type"] == "image"
    assert [u["id"] for u in m["mentioned_users"]] == [friend]
    assert m["mentioned_users"][0]["name"] == "Friend"
    with pytest.raises(StreamAPIException):
        channel.send_message({"text": "x", "attachments": [{"type": "file"}] * 31}, author)
    with pytest.raises(StreamAPIException):
        channel.send_message({"text": "x", "mentioned_users": [f"u{i}" for i in range(26)]}, author)


def test_threads_and_replies(client, channel, author):
    parent = channel.send_message({"text": "parent"}, author)["message"]
    for i in range(10):
        channel.send_message({"text": f"reply {i}", "parent_id": parent["id"], "index": i}, author)
    shown = channel.send_message({"text": "also in channel", "parent_id": parent["id"], "show_in_channel": True}, author)["message"]
    assert shown["type"] == "reply" and shown["parent_id"] == parent["id"]
    assert client.get_message(parent["id"])["message"]["reply_count"] == 11
    # the channel lists the parent and the reply shown in the channel only
    assert [m["text"] for m in channel.query()["messages"]] == ["parent", "also in channel"]
    replies = channel.get_replies(parent["id"])["messages"]
    assert len(replies) == 11 and replies[0]["index"] == 0
    page = channel.get_replies(parent["id"], limit=3, offset=3)["messages"]
    assert len(page) == 3
    older = channel.get_replies(parent["id"], limit=3, id_lt=replies[5]["id"])["messages"]
    assert [m["index"] for m in older] == [2, 3, 4]
    with pytest.raises(StreamAPIException):  # replies to replies are not threads
        channel.send_message({"text": "x", "parent_id": replies[0]["id"]}, author)
    with pytest.raises(StreamAPIException):
        channel.send_message({"text": "x", "parent_id": "nope-" + uuid.uuid4().hex}, author)


def test_quoted_message_is_enriched_one_level(channel, author):
    a = channel.send_message({"id": "qa-" + uuid.uuid4().hex, "text": "A"}, author)["message"]
    b = channel.send_message({"text": "B", "quoted_message_id": a["id"]}, author)["message"]
    assert b["quoted_message"]["id"] == a["id"] and b["quoted_message"]["text"] == "A"
    c = channel.send_message({"text": "C", "quoted_message_id": b["id"]}, author)["message"]
    assert c["quoted_message"]["id"] == b["id"]
    assert "quoted_message" not in c["quoted_message"]
    state = channel.query()
    assert state["messages"][-1]["quoted_message"]["text"] == "B"


def test_pinned_on_send(channel, author):
    m = channel.send_message({"text": "pinned", "pinned": True, "pin_expires": "2999-01-01T00:00:00Z"}, author)["message"]
    assert m["pinned"] is True and m["pinned_by"]["id"] == author and m["pin_expires"].startswith("2999")


def test_slow_mode(client, server, channel, author):
    member = uid("slow")
    client.upsert_users([{"id": member}])
    channel.add_members([member])
    channel.update_partial(to_set={"cooldown": 2})
    path = f"/channels/messaging/{channel.id}/message"
    tok = server.user_token(member)
    assert server.request("POST", path, token=tok, json={"message": {"text": "one"}}).status_code == 200
    r = server.request("POST", path, token=tok, json={"message": {"text": "two"}})
    assert r.status_code == 400 and "slow mode" in r.json()["message"]
    # server-side sends are not limited
    channel.send_message({"text": "server"}, member)
    channel.send_message({"text": "server"}, member)


def test_client_needs_grants_for_links_attachments_and_mentions(client, server, author):
    name = "lim" + uuid.uuid4().hex[:8]
    client.create_channel_type({"name": name})
    client.update_channel_type(name, grants={"channel_member": ["read-channel", "create-message"], "user": []})
    member = uid("limited")
    client.upsert_users([{"id": member}])
    ch = client.channel(name, uid("ch"), {"members": [author, member]})
    ch.create(author)
    path = f"/channels/{name}/{ch.id}/message"
    tok = server.user_token(member)
    send = lambda message: server.request("POST", path, token=tok, json={"message": message})
    assert send({"text": "plain"}).status_code == 200
    assert send({"text": "see https://example.com"}).status_code == 403
    assert send({"text": "file", "attachments": [{"type": "file"}]}).status_code == 403
    assert send({"text": "hey", "mentioned_users": [author]}).status_code == 403


def test_reactions(client, channel, author):
    fan = uid("fan")
    client.upsert_users([{"id": fan}])
    m = channel.send_message({"text": "react"}, author)["message"]
    r = channel.send_reaction(m["id"], {"type": "love", "count": 42}, author)
    assert len(r["message"]["latest_reactions"]) == 1
    assert r["message"]["latest_reactions"][0]["type"] == "love"
    assert r["message"]["latest_reactions"][0]["user"]["id"] == author
    assert r["reaction"]["count"] == 42
    assert [x["type"] for x in r["message"]["own_reactions"]] == ["love"]
    channel.send_reaction(m["id"], {"type": "clap", "score": 5}, fan)
    r = channel.send_reaction(m["id"], {"type": "love"}, fan)
    msg = r["message"]
    assert msg["reaction_counts"] == {"love": 2, "clap": 1}
    assert msg["reaction_scores"] == {"love": 2, "clap": 5}
    assert msg["reaction_groups"]["love"]["count"] == 2 and msg["reaction_groups"]["clap"]["sum_scores"] == 5
    assert msg["reaction_groups"]["love"]["first_reaction_at"] <= msg["reaction_groups"]["love"]["last_reaction_at"]
    # the same type again replaces the reaction (score changes, count does not)
    msg = channel.send_reaction(m["id"], {"type": "clap", "score": 9}, fan)["message"]
    assert msg["reaction_counts"]["clap"] == 1 and msg["reaction_scores"]["clap"] == 9
    listed = channel.get_reactions(m["id"])["reactions"]
    # newest first by creation (a replaced reaction keeps its created_at)
    assert [(x["type"], x["user"]["id"]) for x in listed] == [("love", fan), ("clap", fan), ("love", author)]
    assert [x["type"] for x in channel.get_reactions(m["id"], offset=1)["reactions"]] == ["clap", "love"]
    assert len(channel.get_reactions(m["id"], limit=1)["reactions"]) == 1
    with pytest.raises(StreamAPIException):
        channel.get_reactions(m["id"], limit=301)
    # enforce_unique leaves one reaction per user
    r = client.post(f"messages/{m['id']}/reaction", data={"reaction": {"type": "wow", "user_id": fan}, "enforce_unique": True})
    assert r["message"]["reaction_counts"] == {"love": 1, "wow": 1}
    # delete
    r = channel.delete_reaction(m["id"], "love", author)
    assert r["message"]["latest_reactions"] == [] or all(x["user"]["id"] != author for x in r["message"]["latest_reactions"])
    assert r["message"].get("reaction_counts", {}).get("love") is None
    with pytest.raises(StreamAPIException):
        channel.delete_reaction(m["id"], "love", author)
    state = channel.query()
    assert state["messages"][0]["reaction_counts"] == {"wow": 1}


def test_reactions_follow_grants_and_frozen(client, server, channel, author):
    member = uid("rm")
    client.upsert_users([{"id": member}])
    channel.add_members([member])
    m = channel.send_message({"text": "x"}, author)["message"]
    tok = server.user_token(member)
    r = server.request("POST", f"/messages/{m['id']}/reaction", token=tok, json={"reaction": {"type": "like"}})
    assert r.status_code == 200, r.text
    r = server.request("DELETE", f"/messages/{m['id']}/reaction/like", token=server.user_token(author), params={"user_id": member})
    assert r.status_code == 404  # the author has no like; clients act as themselves
    channel.update_partial(to_set={"frozen": True})
    r = server.request("POST", f"/messages/{m['id']}/reaction", token=tok, json={"reaction": {"type": "wow"}})
    assert r.status_code == 403
    r = server.request("DELETE", f"/messages/{m['id']}/reaction/like", token=tok)
    assert r.status_code == 403


def test_hard_delete_removes_reactions_and_replies(client, channel, author):
    parent = channel.send_message({"text": "parent"}, author)["message"]
    reply = channel.send_message({"text": "reply", "parent_id": parent["id"]}, author)["message"]
    channel.send_reaction(reply["id"], {"type": "like"}, author)
    channel.send_reaction(parent["id"], {"type": "like"}, author)
    client.delete_message(parent["id"], hard=True)
    for mid in (parent["id"], reply["id"]):
        with pytest.raises(StreamAPIException):
            client.get_message(mid)
    # the ids are free again: nothing of the thread is left
    channel.send_message({"id": reply["id"], "text": "reused"}, author)
    # a hard-deleted reply leaves its parent's count
    p2 = channel.send_message({"text": "p2"}, author)["message"]
    r2 = channel.send_message({"text": "r2", "parent_id": p2["id"]}, author)["message"]
    client.delete_message(r2["id"], hard=True)
    assert client.get_message(p2["id"])["message"]["reply_count"] == 0


def test_delete_for_me(client, server, channel, author):
    other = uid("other")
    client.upsert_users([{"id": other}])
    channel.add_members([other])
    m = channel.send_message({"text": "visible to most"}, author)["message"]
    r = client.delete_message(m["id"], delete_for_me=True, deleted_by=other)
    assert r["message"]["deleted_for_me"] is True and r["message"]["type"] == "deleted"
    mine = client.query_channels({"cid": channel.cid}, user_id=other)["channels"][0]["messages"]
    assert mine[0]["deleted_for_me"] is True and mine[0]["text"] == ""
    theirs = client.query_channels({"cid": channel.cid}, user_id=author)["channels"][0]["messages"]
    assert theirs[0]["text"] == "visible to most" and "deleted_for_me" not in theirs[0]
    r = server.request("GET", f"/messages/{m['id']}", token=server.user_token(other))
    assert r.json()["message"]["deleted_for_me"] is True
    # a client deletes for themselves any message, even one they did not send
    m2 = channel.send_message({"text": "another"}, author)["message"]
    r = server.request("DELETE", f"/messages/{m2['id']}", token=server.user_token(other), json={"delete_for_me": True})
    assert r.status_code == 200 and r.json()["message"]["deleted_for_me"] is True
    r = server.request("DELETE", f"/messages/{m2['id']}", token=server.user_token(other), params={"hard": "true"}, json={"delete_for_me": True})
    assert r.status_code == 400 and "mutually exclusive" in r.json()["message"]


def test_delete_for_me_limit(client, channel, author):
    for i in range(100):
        mid = channel.send_message({"text": f"d{i}"}, author)["message"]["id"]
        client.delete_message(mid, delete_for_me=True, deleted_by=author)
    mid = channel.send_message({"text": "one too many"}, author)["message"]["id"]
    with pytest.raises(StreamAPIException):
        client.delete_message(mid, delete_for_me=True, deleted_by=author)


def test_undelete(client, server, channel, author):
    m = channel.send_message({"text": "back soon", "color": "red"}, author)["message"]
    client.delete_message(m["id"])
    r = client.post(f"messages/{m['id']}/undelete", data={"undeleted_by": author})
    assert r["message"]["type"] == "regular" and r["message"]["text"] == "back soon" and r["message"]["color"] == "red"
    with pytest.raises(StreamAPIException):  # not deleted any more
        client.post(f"messages/{m['id']}/undelete", data={"undeleted_by": author})
    parent = channel.send_message({"text": "p"}, author)["message"]
    reply = channel.send_message({"text": "r", "parent_id": parent["id"]}, author)["message"]
    client.delete_message(reply["id"])
    client.delete_message(parent["id"])
    with pytest.raises(StreamAPIException):  # the parent first
        client.post(f"messages/{reply['id']}/undelete", data={"undeleted_by": author})
    client.post(f"messages/{parent['id']}/undelete", data={"undeleted_by": author})
    assert client.post(f"messages/{reply['id']}/undelete", data={"undeleted_by": author})["message"]["type"] == "reply"
    with pytest.raises(StreamAPIException):
        client.post(f"messages/{m['id']}/undelete", data={"undeleted_by": "nobody-" + uuid.uuid4().hex})
    hard = channel.send_message({"text": "gone"}, author)["message"]
    client.delete_message(hard["id"], hard=True)
    with pytest.raises(StreamAPIException):
        client.post(f"messages/{hard['id']}/undelete", data={"undeleted_by": author})
    client.delete_message(m["id"])
    r = server.request("POST", f"/messages/{m['id']}/undelete", token=server.user_token(author), json={"undeleted_by": author})
    assert r.status_code == 403


def pinned_page(client, channel, **payload):
    import json

    return client.get(f"channels/{channel.channel_type}/{channel.id}/pinned_messages", params={"payload": json.dumps(payload)})["messages"]


def test_pinned_messages(client, channel, author):
    ids = []
    for i in range(12):
        m = channel.send_message({"text": f"p{i}"}, author)["message"]
        client.pin_message(m["id"], author)
        ids.append(m["id"])
    expiring = channel.send_message({"text": "short"}, author)["message"]
    client.pin_message(expiring["id"], author, expiration=1)
    state = channel.query()
    assert len(state["pinned_messages"]) == 10
    assert {m["id"] for m in state["pinned_messages"]} <= set(ids + [expiring["id"]])
    asc = pinned_page(client, channel, limit=5)
    assert [m["id"] for m in asc] == ids[:5]
    nxt = pinned_page(client, channel, limit=5, id_gt=asc[-1]["id"])
    assert [m["id"] for m in nxt] == ids[5:10]
    desc = pinned_page(client, channel, limit=3, sort=[{"field": "pinned_at", "direction": -1}])
    assert desc[0]["id"] == expiring["id"] and [m["id"] for m in desc[1:]] == ids[::-1][:2]
    older = pinned_page(client, channel, limit=3, id_lt=ids[5], sort=[{"field": "pinned_at", "direction": -1}])
    assert [m["id"] for m in older] == [ids[4], ids[3], ids[2]]
    client.unpin_message(ids[0], author)
    assert ids[0] not in [m["id"] for m in pinned_page(client, channel, limit=20)]
    import time

    time.sleep(1.2)
    got = client.get_message(expiring["id"])["message"]
    assert got["pinned"] is False and got["pinned_at"] is None
    assert expiring["id"] not in [m["id"] for m in pinned_page(client, channel, limit=20)]
    with pytest.raises(StreamAPIException):
        pinned_page(client, channel, sort=[{"field": "created_at", "direction": 1}])


def test_restricted_visibility(client, server, channel, author):
    amy, paul, admin = uid("amy"), uid("paul"), uid("adm")
    client.upsert_users([{"id": amy}, {"id": paul}, {"id": admin, "role": "admin"}])
    channel.add_members([amy, paul, admin])
    m = channel.send_message({"text": "only amy", "restricted_visibility": [amy]}, author)["message"]
    assert m["restricted_visibility"] == [amy]
    parent = channel.send_message({"text": "thread"}, author)["message"]
    channel.send_message({"text": "secret reply", "parent_id": parent["id"], "restricted_visibility": [amy]}, author)

    def texts_for(user):
        state = server.request("POST", f"/channels/messaging/{channel.id}/query", token=server.user_token(user), json={"state": True}).json()
        return [x["text"] for x in state["messages"]]

    assert "only amy" in texts_for(amy)
    assert "only amy" in texts_for(author)
    assert "only amy" in texts_for(admin)  # admins may read restricted messages
    assert "only amy" not in texts_for(paul)
    assert server.request("GET", f"/messages/{m['id']}", token=server.user_token(paul)).status_code == 404
    assert server.request("GET", f"/messages/{m['id']}", token=server.user_token(amy)).status_code == 200
    replies = server.request("GET", f"/messages/{parent['id']}/replies", token=server.user_token(paul)).json()["messages"]
    assert replies == []
    by_ids = server.request("GET", f"/channels/messaging/{channel.id}/messages", token=server.user_token(paul), params={"ids": m["id"]}).json()
    assert by_ids["messages"] == []
    # server-side on behalf of a user sees what that user sees
    assert "only amy" not in [x["text"] for x in client.query_channels({"cid": channel.cid}, user_id=paul)["channels"][0]["messages"]]
    with pytest.raises(StreamAPIException):
        client.pin_message(m["id"], author)
    with pytest.raises(StreamAPIException):
        channel.send_message({"text": "x", "restricted_visibility": [amy], "pinned": True}, author)
    # clients need CreateRestrictedVisibilityMessage (admins only by default)
    r = server.request("POST", f"/channels/messaging/{channel.id}/message", token=server.user_token(paul), json={"message": {"text": "psst", "restricted_visibility": [amy]}})
    assert r.status_code == 403


def test_pending_messages(client, server, channel, author):
    other = uid("other")
    client.upsert_users([{"id": other}])
    channel.add_members([other])
    r = channel.send_message({"text": "held"}, author, pending=True, pending_message_metadata={"my": "metadata"})
    m = r["message"]
    assert m["pending"] is True
    state_other = client.query_channels({"cid": channel.cid}, user_id=other)["channels"][0]
    assert state_other["messages"] == [] and state_other["pending_messages"] == []
    state_author = client.query_channels({"cid": channel.cid}, user_id=author)["channels"][0]
    assert [x["id"] for x in state_author["pending_messages"]] == [m["id"]]
    assert state_author["messages"] == []
    assert server.request("GET", f"/messages/{m['id']}", token=server.user_token(other)).status_code == 404
    mine = server.request("GET", f"/messages/{m['id']}", token=server.user_token(author)).json()["message"]
    assert mine["pending_message_metadata"] == {"my": "metadata"}
    assert client.unread_counts(other)["total_unread_count"] == 0
    with pytest.raises(StreamAPIException):
        client.update_message({"id": m["id"], "text": "changed"})
    committed = client.commit_message(m["id"])["message"]
    assert not committed.get("pending", False)
    with pytest.raises(StreamAPIException):
        client.commit_message(m["id"])
    state_other = client.query_channels({"cid": channel.cid}, user_id=other)["channels"][0]
    assert [x["id"] for x in state_other["messages"]] == [m["id"]]
    assert client.unread_counts(other)["total_unread_count"] == 1
    # pending messages go by hard delete only; clients cannot send them pending
    p2 = channel.send_message({"text": "held too"}, author, pending=True)["message"]
    with pytest.raises(StreamAPIException):
        client.delete_message(p2["id"])
    client.delete_message(p2["id"], hard=True)
    with pytest.raises(StreamAPIException):
        client.get_message(p2["id"])
    r = server.request("POST", f"/channels/messaging/{channel.id}/message", token=server.user_token(author), json={"message": {"text": "x"}, "pending": True})
    assert r.status_code == 403


def test_type_marks_messages_pending(client, author):
    name = "pm" + uuid.uuid4().hex[:8]
    client.create_channel_type({"name": name, "mark_messages_pending": True})
    ch = client.channel(name, uid("ch"), {"members": [author]})
    ch.create(author)
    m = ch.send_message({"text": "auto held"}, author)["message"]
    assert m["pending"] is True
    assert ch.query()["messages"] == []


def test_query_reactions(client, channel, author):
    fans = [uid("fan") for _ in range(4)]
    client.upsert_users([{"id": f} for f in fans])
    m = channel.send_message({"text": "popular"}, author)["message"]
    for i, f in enumerate(fans):
        channel.send_reaction(m["id"], {"type": "like" if i % 2 == 0 else "wow", "level": i}, f)
    q = lambda **body: client.post(f"messages/{m['id']}/reactions", data=body)
    r = q(filter={"type": "like"})
    assert sorted(x["user"]["id"] for x in r["reactions"]) == sorted([fans[0], fans[2]])
    r = q(filter={"user_id": {"$in": fans[:3]}}, limit=2)
    assert len(r["reactions"]) == 2 and r["next"]
    rest = q(filter={"user_id": {"$in": fans[:3]}}, limit=2, next=r["next"])
    assert len(rest["reactions"]) == 1 and "next" not in rest
    newest = q(sort=[{"field": "created_at", "direction": -1}])["reactions"]
    oldest = q(sort=[{"field": "created_at", "direction": 1}])["reactions"]
    assert [x["user_id"] for x in newest] == [x["user_id"] for x in oldest][::-1]
    assert q(filter={"level": 3})["reactions"][0]["user_id"] == fans[3]
    with pytest.raises(StreamAPIException):
        q(sort=[{"field": "type", "direction": 1}])


def test_rejected_send_leaves_the_channel_as_it_was(client, channel, author):
    first = channel.send_message({"id": "same-" + uuid.uuid4().hex, "text": "one"}, author)["message"]
    before = channel.query()["channel"]
    with pytest.raises(StreamAPIException):
        channel.send_message({"id": first["id"], "text": "two"}, author)
    with pytest.raises(StreamAPIException):
        channel.send_message({"text": "x" * 5001}, author)
    with pytest.raises(StreamAPIException):
        channel.send_message({"text": "big", "blob": "x" * 6000}, author)
    after = channel.query()
    assert after["channel"]["last_message_at"] == before["last_message_at"]
    assert after["channel"]["updated_at"] == before["updated_at"]
    assert [m["text"] for m in after["messages"]] == ["one"]


def test_absurd_durations_are_refused_not_crashed(client, channel, author):
    m = channel.send_message({"text": "x"}, author)["message"]
    with pytest.raises(StreamAPIException) as err:
        client.pin_message(m["id"], author, expiration=10**18)
    assert err.value.error_code == 4
    with pytest.raises(StreamAPIException) as err:
        channel.mute(author, expiration=10**18)
    assert err.value.error_code == 4
