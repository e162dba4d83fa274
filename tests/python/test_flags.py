"""Flags through the official Python SDK (server side) and raw HTTP with user tokens, against
chat-local: flag / unflag messages and users, one flag per reporter and target, query message
flags by channel, author, message and reporter, and who may do each."""

import uuid

import pytest
from stream_chat.base.exceptions import StreamAPIException

ENVELOPE = {"code", "message", "StatusCode", "duration", "more_info"}


def uid(prefix="f"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def scene(client):
    author, reporter, other, admin = (uid("u") for _ in range(4))
    client.upsert_users(
        [{"id": author}, {"id": reporter}, {"id": other}, {"id": admin, "role": "admin"}]
    )
    ch = client.channel("messaging", uid("ch"), {"members": [author, reporter]})
    ch.create(author)
    msg_id = str(uuid.uuid4())
    ch.send_message({"id": msg_id, "text": "helloworld"}, author)
    return {"author": author, "reporter": reporter, "other": other, "admin": admin, "channel": ch, "msg": msg_id}


def flags_of(client, filt):
    return client.query_message_flags(filt)["flags"]


def test_sdk_flag_and_unflag_user(client, scene):
    response = client.flag_user(scene["author"], user_id=scene["reporter"])
    assert response["flag"]["user"]["id"] == scene["reporter"]
    assert response["flag"]["target_user"]["id"] == scene["author"]
    client.unflag_user(scene["author"], user_id=scene["reporter"])
    with pytest.raises(StreamAPIException) as again:
        client.unflag_user(scene["author"], user_id=scene["reporter"])
    assert again.value.status_code == 404


def test_sdk_flag_query_and_unflag_message(client, scene):
    ch = scene["channel"]
    client.flag_message(scene["msg"], user_id=scene["reporter"], reason="spam")
    by_channel = flags_of(client, {"channel_cid": ch.cid})
    assert len(by_channel) == 1
    flag = by_channel[0]
    assert flag["message"]["id"] == scene["msg"] and flag["user"]["id"] == scene["reporter"]
    assert flag["reason"] == "spam" and flag["created_by_automod"] is False
    # user_id filters on the flagged message's author (as the SDK's own test does).
    assert len(flags_of(client, {"user_id": {"$in": [scene["author"]]}})) == 1
    assert flags_of(client, {"user_id": {"$in": [scene["reporter"]]}}) == []
    assert len(flags_of(client, {"message_id": scene["msg"]})) == 1
    assert len(flags_of(client, {"reporter_id": scene["reporter"]})) == 1
    client.unflag_message(scene["msg"], user_id=scene["reporter"])
    assert flags_of(client, {"channel_cid": ch.cid}) == []


def test_one_flag_per_reporter_and_target(client, scene):
    first = client.flag_message(scene["msg"], user_id=scene["reporter"], reason="first")
    second = client.flag_message(scene["msg"], user_id=scene["reporter"], reason="second")
    assert second["flag"]["created_at"] == first["flag"]["created_at"]
    assert second["flag"]["reason"] == "first"
    client.flag_message(scene["msg"], user_id=scene["other"])
    flags = flags_of(client, {"message_id": scene["msg"]})
    assert sorted(f["user"]["id"] for f in flags) == sorted([scene["reporter"], scene["other"]])


def test_bad_flag_requests(client, server, scene):
    cases = [
        {"user_id": scene["reporter"]},
        {"target_message_id": scene["msg"], "target_user_id": scene["author"], "user_id": scene["reporter"]},
        {"target_message_id": scene["msg"], "user_id": scene["reporter"], "reason": "x" * 256},
        {"target_user_id": scene["reporter"], "user_id": scene["reporter"]},
    ]
    token = server.request  # raw HTTP keeps the envelope visible
    for body in cases:
        r = token("POST", "/moderation/flag", token=server_token(server), json=body)
        assert r.status_code == 400, (body, r.text)
        assert ENVELOPE <= set(r.json()), r.text
        assert "flags#" not in r.text and "FlagRequest" not in r.text
    r = token("POST", "/moderation/flag", token=server_token(server),
              json={"target_message_id": "no-such-message", "user_id": scene["reporter"]})
    assert r.status_code == 404, r.text
    r = token("GET", "/moderation/flags/message", token=server_token(server),
              params={"payload": '{"filter_conditions": {"nope": 1}}'})
    assert r.status_code == 400, r.text
    r = token("GET", "/moderation/flags/message", token=server_token(server),
              params={"payload": '{"filter_conditions": {}, "limit": 301}'})
    assert r.status_code == 400, r.text


def server_token(server):
    import jwt

    return jwt.encode({"server": True}, server.api_secret, algorithm="HS256")


def test_client_side_flags_follow_the_grants(client, server, scene):
    member = server.user_token(scene["reporter"])
    # A member may flag a message of their channel and another user (flag-message, flag-user).
    r = server.request("POST", "/moderation/flag", token=member, json={"target_message_id": scene["msg"]})
    assert r.status_code == 200, r.text
    assert r.json()["flag"]["user"]["id"] == scene["reporter"]
    r = server.request("POST", "/moderation/flag", token=member, json={"target_user_id": scene["other"]})
    assert r.status_code == 200, r.text
    # The reporter is the caller: a client cannot flag in someone else's name.
    r = server.request("POST", "/moderation/flag", token=member,
                       json={"target_user_id": scene["author"], "user_id": scene["other"]})
    assert r.status_code == 200 and r.json()["flag"]["user"]["id"] == scene["reporter"], r.text
    # An outsider cannot read the channel, so cannot flag its messages.
    outsider = server.user_token(scene["other"])
    r = server.request("POST", "/moderation/flag", token=outsider, json={"target_message_id": scene["msg"]})
    assert r.status_code == 403 and r.json()["code"] == 17, r.text
    # Anonymous callers flag nothing.
    r = server.request("POST", "/moderation/flag", auth_type="anonymous", json={"target_user_id": scene["other"]})
    assert r.status_code in (401, 403), r.text
    # Reading message flags: a plain member sees none of them, an admin sees them.
    r = server.request("GET", "/moderation/flags/message", token=member,
                       params={"payload": '{"filter_conditions": {"message_id": "%s"}}' % scene["msg"]})
    assert r.status_code == 200 and r.json()["flags"] == [], r.text
    admin = server.user_token(scene["admin"])
    r = server.request("GET", "/moderation/flags/message", token=admin,
                       params={"payload": '{"filter_conditions": {"message_id": "%s"}}' % scene["msg"]})
    assert r.status_code == 200 and len(r.json()["flags"]) == 1, r.text


def test_flag_message_capability(server, scene):
    token = server.user_token(scene["reporter"])
    ch = scene["channel"]
    r = server.request("POST", f"/channels/messaging/{ch.id}/query", token=token, json={})
    assert "flag-message" in r.json()["channel"]["own_capabilities"], r.text


def test_sdk_query_and_review_flag_reports(client, scene):
    """The SDK's own (internal) report calls, as its tests use them."""
    client.flag_message(scene["msg"], user_id=scene["reporter"])
    client.flag_message(scene["msg"], user_id=scene["other"])
    response = client._query_flag_reports(message_id=scene["msg"])
    assert len(response["flag_reports"]) == 1
    report = response["flag_reports"][0]
    assert report["id"] and report["message"]["id"] == scene["msg"]
    assert report["message"]["text"] == "helloworld" and report["flags_count"] == 2
    assert flags_of(client, {"message_id": scene["msg"], "is_reviewed": True}) == []
    reviewed = client._review_flag_report(
        report_id=report["id"], review_result="reviewed", user_id=scene["admin"], custom="reason_a"
    )["flag_report"]
    assert reviewed["id"] == report["id"] and reviewed["message"]["id"] == scene["msg"]
    assert reviewed["review_result"] == "reviewed"
    assert reviewed["review_details"]["custom"] == "reason_a"
    assert reviewed["reviewed_by"]["id"] == scene["admin"]
    again = client._query_flag_reports(message_id=scene["msg"], review_result="reviewed")["flag_reports"]
    assert [r["id"] for r in again] == [report["id"]]
    assert len(flags_of(client, {"message_id": scene["msg"], "is_reviewed": True})) == 2
    with pytest.raises(StreamAPIException) as missing:
        client._review_flag_report(report_id="no-such-report", review_result="reviewed", user_id=scene["admin"])
    assert missing.value.status_code == 404


def test_flag_reports_follow_the_grants(server, scene, client):
    client.flag_message(scene["msg"], user_id=scene["reporter"])
    member = server.user_token(scene["reporter"])
    r = server.request("POST", "/moderation/reports", token=member, json={"filter_conditions": {}})
    assert r.status_code == 403 and r.json()["code"] == 17, r.text
    r = server.request("PATCH", f"/moderation/reports/{scene['msg']}", token=member, json={"review_result": "ok"})
    assert r.status_code == 403, r.text
    admin = server.user_token(scene["admin"])
    r = server.request("POST", "/moderation/reports", token=admin,
                       json={"filter_conditions": {"message_id": scene["msg"]}})
    assert r.status_code == 200 and len(r.json()["flag_reports"]) == 1, r.text
    r = server.request("PATCH", f"/moderation/reports/{scene['msg']}", token=admin, json={})
    assert r.status_code == 400, r.text
    r = server.request("PATCH", f"/moderation/reports/{scene['msg']}", token=admin, json={"review_result": "approved"})
    assert r.status_code == 200 and r.json()["flag_report"]["reviewed_by"]["id"] == scene["admin"], r.text
