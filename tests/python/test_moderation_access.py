"""Who may call the moderation and pipeline endpoints added with hooks, flags, blocklists and
custom commands: each server-only endpoint against every client token kind (user, another user,
guest, anonymous), and future-channel bans scoped to the caller's own."""

import json
import uuid

import jwt
import pytest

ENVELOPE = {"code", "message", "StatusCode", "duration", "more_info"}


def uid(prefix="a"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def tokens(server, client):
    user, other = uid("u"), uid("o")
    client.upsert_users([{"id": user}, {"id": other}])
    guest = server.request("POST", "/guest", auth_type="anonymous", json={"user": {"id": uid("g")}})
    assert guest.status_code in (200, 201), guest.text
    return {
        "user": server.user_token(user),
        "other user": server.user_token(other),
        "guest": guest.json()["access_token"],
        "anonymous": None,
    }


SERVER_ONLY = [
    ("POST", "/check_sqs", {"sqs_url": "https://sqs.us-east-1.amazonaws.com/123456789012/q"}),
    ("POST", "/check_sns", {"sns_topic_arn": "arn:aws:sns:us-east-1:123456789012:t"}),
    ("GET", "/event_hooks/failures", None),
    ("POST", "/event_hooks/failures/replay", None),
    ("GET", "/blocklists", None),
    ("POST", "/blocklists", {"name": "x", "words": ["a"]}),
    ("GET", "/blocklists/x", None),
    ("PUT", "/blocklists/x", {"words": ["b"]}),
    ("DELETE", "/blocklists/x", None),
    ("POST", "/moderation/reports", {"filter_conditions": {}}),
    ("PATCH", "/moderation/reports/some-message", {"review_result": "reviewed"}),
    ("POST", "/export_channels", {"channels": [{"type": "messaging", "id": "x"}]}),
    ("GET", "/export_channels/some-task", None),
    ("POST", "/export/users", {"user_ids": ["x"]}),
    ("GET", "/users/x/export", None),
    ("GET", "/commands", None),
    ("POST", "/commands", {"name": "x", "description": "x"}),
    ("GET", "/commands/x", None),
    ("PUT", "/commands/x", {"description": "y"}),
    ("DELETE", "/commands/x", None),
]


@pytest.mark.parametrize("method,path,body", SERVER_ONLY)
@pytest.mark.parametrize("kind", ["user", "other user", "guest", "anonymous"])
def test_server_only_endpoints_refuse_every_client_token(server, tokens, kind, method, path, body):
    token = tokens[kind]
    if token is None:
        r = server.request(method, path, auth_type="anonymous", json=body)
    else:
        r = server.request(method, path, token=token, json=body)
    assert r.status_code in (401, 403), (kind, method, path, r.status_code, r.text)
    assert ENVELOPE <= set(r.json()), r.text


def test_future_channel_bans_are_the_callers_own(server, client):
    banner, target, other = uid("b"), uid("t"), uid("o")
    client.upsert_users([{"id": banner, "role": "admin"}, {"id": target}, {"id": other}])
    ch = client.channel("messaging", uid("c"), {"members": [banner, target]})
    ch.create(banner)
    ch.ban_user(target, banned_by_id=banner, ban_from_future_channels=True)

    def listed(token, payload=None, auth_type="jwt"):
        r = server.request(
            "GET", "/query_future_channel_bans", token=token, auth_type=auth_type,
            params={"payload": json.dumps(payload or {})},
        )
        return r

    mine = listed(server.user_token(banner))
    assert mine.status_code == 200 and [b["user"]["id"] for b in mine.json()["bans"]] == [target], mine.text
    # Another user (even naming the banner) sees only their own: none.
    theirs = listed(server.user_token(other), {"user_id": banner})
    assert theirs.status_code == 200 and theirs.json()["bans"] == [], theirs.text
    assert listed(None, auth_type="anonymous").status_code in (200, 401, 403)
    assert listed(None, auth_type="anonymous").json().get("bans", []) == []
    server_token = jwt.encode({"server": True}, server.api_secret, algorithm="HS256")
    assert len(listed(server_token, {"user_id": banner}).json()["bans"]) == 1
    # Server-side, the banning user must be named.
    assert listed(server_token).status_code == 400
