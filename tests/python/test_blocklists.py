"""Blocklists through the official Python SDK against chat-local: the SDK's own CRUD calls, and
what a channel type's lists do to messages (block, flag, shadow_block), whole words only,
case-insensitive, on send and on update; server-side only; bounded."""

import uuid

import jwt
import pytest
from stream_chat.base.exceptions import StreamAPIException


def uid(prefix="b"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def server_token(server):
    return jwt.encode({"server": True}, server.api_secret, algorithm="HS256")


@pytest.fixture
def blocklist(client):
    name = uid("list")
    client.create_blocklist(name=name, words=["fudge", "Heck", "good grief"], type="word")
    yield name
    try:
        client.delete_blocklist(name)
    except StreamAPIException:
        pass


def channel_type_with(client, **settings):
    name = uid("bt").replace("-", "_")
    client.create_channel_type({"name": name, **settings})
    return name


@pytest.fixture
def people(client):
    ids = [uid("u"), uid("u")]
    client.upsert_users([{"id": i} for i in ids])
    return ids


def test_sdk_blocklist_crud(client):
    name = uid("Foo")
    client.create_blocklist(name=name, words=["fudge", "heck"], type="word")
    names = {b["name"] for b in client.list_blocklists()["blocklists"]}
    assert name in names
    got = client.get_blocklist(name)["blocklist"]
    assert got["name"] == name and got["words"] == ["fudge", "heck"] and got["type"] == "word"
    client.update_blocklist(name, words=["dang"])
    assert client.get_blocklist(name)["blocklist"]["words"] == ["dang"]
    client.delete_blocklist(name)
    with pytest.raises(StreamAPIException) as gone:
        client.get_blocklist(name)
    assert gone.value.status_code == 404


def test_blocked_words_are_answered_not_sent(client, blocklist, people):
    ctype = channel_type_with(client, blocklist=blocklist, blocklist_behavior="block")
    a, b = people
    ch = client.channel(ctype, uid("c"), {"members": [a, b]})
    ch.create(a)
    refused = ch.send_message({"text": "oh FUDGE!"}, a)["message"]
    assert refused["type"] == "error", refused
    fine = ch.send_message({"text": "fudgesicles are fine"}, a)["message"]
    assert fine["type"] == "regular"
    phrase = ch.send_message({"text": "Good   grief, Charlie"}, a)["message"]
    assert phrase["type"] == "error"
    texts = [m["text"] for m in ch.query(messages={"limit": 10})["messages"]]
    assert texts == ["fudgesicles are fine"], texts
    # Editing a message into a blocked one is refused.
    with pytest.raises(StreamAPIException) as blocked:
        client.update_message({"id": fine["id"], "text": "what the heck", "user_id": a})
    assert blocked.value.status_code == 400
    assert client.get_message(fine["id"])["message"]["text"] == "fudgesicles are fine"


def test_flagged_words_are_sent_and_flagged(client, blocklist, people):
    ctype = channel_type_with(client, blocklist=blocklist, blocklist_behavior="flag")
    a, b = people
    ch = client.channel(ctype, uid("c"), {"members": [a, b]})
    ch.create(a)
    sent = ch.send_message({"text": "heck yes"}, a)["message"]
    assert sent["type"] == "regular"
    flags = client.query_message_flags({"message_id": sent["id"]})["flags"]
    assert len(flags) == 1 and flags[0]["created_by_automod"] is True, flags
    clean = ch.send_message({"text": "checkers"}, a)["message"]
    assert client.query_message_flags({"message_id": clean["id"]})["flags"] == []


def test_shadow_blocked_words_reach_only_their_author(client, server, blocklist, people):
    ctype = channel_type_with(client, blocklists=[{"blocklist": blocklist, "behavior": "shadow_block"}])
    a, b = people
    ch = client.channel(ctype, uid("c"), {"members": [a, b]})
    ch.create(a)
    sent = ch.send_message({"text": "fudge it"}, a)["message"]
    assert client.get_message(sent["id"])["message"]["shadowed"] is True
    seen_by = {}
    for who in (a, b):
        r = server.request("POST", f"/channels/{ctype}/{ch.id}/query", token=server.user_token(who), json={})
        seen_by[who] = [m["id"] for m in r.json()["messages"]]
    assert seen_by[a] == [sent["id"]] and seen_by[b] == [], seen_by


def test_blocklists_are_server_side_and_bounded(client, server, people):
    user = server.user_token(people[0])
    for method, path, body in [
        ("GET", "/blocklists", None),
        ("POST", "/blocklists", {"name": uid("x"), "words": ["a"]}),
        ("GET", "/blocklists/anything", None),
        ("PUT", "/blocklists/anything", {"words": ["a"]}),
        ("DELETE", "/blocklists/anything", None),
    ]:
        r = server.request(method, path, token=user, json=body)
        assert r.status_code == 403 and r.json()["code"] == 17, (method, path, r.text)
    token = server_token(server)
    for body in [
        {"name": uid("x"), "words": ["(unclosed"], "type": "regex"},
        {"name": uid("x"), "words": ["not a domain"], "type": "domain"},
        {"name": uid("x"), "words": ["nobody@"], "type": "email_allowlist"},
        {"name": uid("x"), "words": ["a"], "is_leet_check_enabled": True},
        {"name": uid("x"), "words": ["a"], "type": "nope"},
        {"name": uid("x"), "words": ["w"] * 10_001},
        {"name": uid("x"), "words": [" "]},
        {"name": "", "words": ["a"]},
        {"name": "x" * 256, "words": ["a"]},
    ]:
        r = server.request("POST", "/blocklists", token=token, json=body)
        assert r.status_code == 400, (body.get("type"), len(body["words"]), r.text)
        assert r.json()["code"] == 4, r.text
        assert "blocklist#" not in r.text and "BlocklistRequest" not in r.text
    name = uid("dup")
    assert server.request("POST", "/blocklists", token=token, json={"name": name, "words": ["a"]}).status_code == 200
    assert server.request("POST", "/blocklists", token=token, json={"name": name, "words": ["b"]}).status_code == 400
    big = server.request("POST", "/blocklists", token=token, json={"name": uid("big"), "words": [f"w{i}" for i in range(10_000)]})
    assert big.status_code == 200, big.text
    assert server.request("DELETE", "/blocklists/no-such-list", token=token).status_code == 404


@pytest.mark.parametrize(
    "kind,words,caught,passes",
    [
        ("regex", [r"\b\d{3}-\d{4}\b", "free +money"], ["call 555-1234", "FREE  MONEY now"], ["call me maybe"]),
        ("domain", ["spam.example"], ["see https://www.spam.example/deal", "spam.example rocks"], ["a@spam.example", "ham.example"]),
        ("domain_allowlist", ["getstream.io"], ["try evil.com"], ["docs: https://getstream.io/chat", "version 1.2"]),
        ("email", ["boss@corp.com", "spam.example"], ["ping Boss@Corp.com", "x@spam.example"], ["ceo@corp.com"]),
        ("email_allowlist", ["ourcompany.com"], ["me@gmail.com"], ["help@ourcompany.com", "no address"]),
    ],
)
def test_each_list_type_blocks_what_it_names(client, people, kind, words, caught, passes):
    name = uid(kind.replace("_", "-"))
    client.create_blocklist(name=name, words=words, type=kind)
    ctype, ch = None, None
    try:
        assert client.get_blocklist(name)["blocklist"]["type"] == kind
        ctype = channel_type_with(client, blocklist=name, blocklist_behavior="block")
        a, b = people
        ch = client.channel(ctype, uid("c"), {"members": [a, b]})
        ch.create(a)
        for text in caught:
            assert ch.send_message({"text": text}, a)["message"]["type"] == "error", (kind, text)
        for text in passes:
            assert ch.send_message({"text": text}, a)["message"]["type"] == "regular", (kind, text)
        stored = [m["text"] for m in ch.query(messages={"limit": 20})["messages"]]
        assert stored == passes, stored
        # A list's words can change; the new ones apply at once.
        client.update_blocklist(name, words=words[:1])
        assert client.get_blocklist(name)["blocklist"]["words"] == words[:1]
    finally:
        if ch is not None:
            ch.delete(hard=True)
        if ctype is not None:
            client.delete_channel_type(ctype)
        client.delete_blocklist(name)
