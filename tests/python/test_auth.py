"""Authentication and the error envelope, with raw HTTP and JWTs signed here, hostile ones
included: every bad credential gets Stream's error code and status, never a 2xx."""

import base64
import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import jwt
import pytest
import requests

ENVELOPE_FIELDS = {"code", "message", "StatusCode", "duration", "more_info"}


def assert_error(resp, status, code):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert ENVELOPE_FIELDS <= set(body), body
    assert body["code"] == code, body
    assert body["StatusCode"] == status
    return body


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def server_token(server):
    return jwt.encode({"server": True}, server.api_secret, algorithm="HS256")


def test_health(server):
    assert requests.get(server.url + "/health", timeout=5).status_code == 200


def test_successful_responses_carry_duration(server):
    resp = server.request("GET", "/app", token=server_token(server))
    assert resp.status_code == 200
    assert resp.json()["duration"].endswith("ms")


def test_api_key_is_required_and_checked(server):
    token = server_token(server)
    resp = requests.get(server.url + "/app", headers={"Authorization": token, "stream-auth-type": "jwt"}, timeout=5)
    assert_error(resp, 401, 2)
    assert_error(server.request("GET", "/app", token=token, api_key="wrong"), 401, 2)


def test_bearer_prefix_is_accepted(server):
    assert server.request("GET", "/app", token="Bearer " + server_token(server)).status_code == 200


def test_missing_token_is_refused(server):
    assert_error(server.request("GET", "/app"), 401, 5)


def test_wrong_secret(server):
    token = jwt.encode({"server": True}, "not-the-secret", algorithm="HS256")
    assert_error(server.request("GET", "/app", token=token), 401, 43)
    token = jwt.encode({"user_id": "mallory"}, "not-the-secret", algorithm="HS256")
    assert_error(server.request("GET", "/app", token=token), 401, 43)


def test_alg_none_is_refused(server):
    for claims in ({"server": True}, {"user_id": "mallory"}):
        token = b64({"alg": "none", "typ": "JWT"}) + "." + b64(claims) + "."
        resp = server.request("PATCH", "/app", token=token, json={"disable_auth_checks": True})
        assert resp.status_code == 401, resp.text
        assert resp.json()["code"] in (5, 43)


def test_other_algorithms_are_refused(server):
    token = jwt.encode({"server": True}, server.api_secret, algorithm="HS512")
    assert_error(server.request("GET", "/app", token=token), 401, 43)


def test_expired_token(server, client, user_id):
    client.upsert_user({"id": user_id})
    token = server.user_token(user_id, exp=int(time.time()) - 3600)
    assert_error(server.request("GET", "/app", token=token), 401, 40)


def test_garbage_token(server):
    assert_error(server.request("GET", "/app", token="not.a.jwt"), 401, 5)


def test_user_token_on_server_only_endpoints(server, client, user_id):
    client.upsert_user({"id": user_id})
    token = server.user_token(user_id)
    assert_error(server.request("PATCH", "/app", token=token, json={"disable_auth_checks": True}), 403, 17)
    assert_error(server.request("DELETE", f"/users/{user_id}", token=token), 403, 17)
    assert_error(server.request("POST", f"/users/{user_id}/deactivate", token=token, json={}), 403, 17)
    assert_error(server.request("GET", "/channeltypes", token=token), 403, 17)
    assert_error(server.request("POST", "/roles", token=token, json={"name": "hacker"}), 403, 17)
    assert client.get_app_settings()["app"]["disable_auth_checks"] is False


def test_user_may_update_itself_but_not_others_or_its_role(server, client, user_id):
    other = "other-" + uuid.uuid4().hex[:8]
    client.upsert_users([{"id": user_id}, {"id": other}])
    token = server.user_token(user_id)
    ok = server.request("POST", "/users", token=token, json={"users": {user_id: {"id": user_id, "color": "blue"}}})
    assert ok.status_code == 200, ok.text
    assert ok.json()["users"][user_id]["color"] == "blue"
    assert_error(server.request("POST", "/users", token=token, json={"users": {other: {"id": other, "x": 1}}}), 403, 17)
    resp = server.request("PATCH", "/users", token=token, json={"users": [{"id": user_id, "set": {"role": "admin"}}]})
    assert_error(resp, 403, 17)
    assert client.query_users({"id": user_id})["users"][0]["role"] == "user"


def test_anonymous_reads_where_granted_and_never_writes(server):
    resp = server.request("POST", "/users", auth_type="anonymous", json={"users": {"anon1": {"id": "anon1"}}})
    assert_error(resp, 403, 17)
    resp = server.request("PATCH", "/app", auth_type="anonymous", json={"reminders_interval": 100})
    assert_error(resp, 403, 17)


def test_app_wide_revocation(server, client, user_id):
    client.upsert_user({"id": user_id})
    old = server.user_token(user_id, iat=int(time.time()) - 120)
    assert server.request("GET", "/app", token=old).status_code == 200
    client.revoke_tokens(datetime.now(timezone.utc) - timedelta(seconds=30))
    try:
        assert_error(server.request("GET", "/app", token=old), 401, 42)
        assert_error(server.request("GET", "/app", token=server.user_token(user_id)), 401, 42)
        assert server.request("GET", "/app", token=server.user_token(user_id, iat=int(time.time()))).status_code == 200
        # server tokens are not user tokens: still accepted
        assert client.get_app_settings()["app"]["revoke_tokens_issued_before"]
    finally:
        client.revoke_tokens(None)
    assert server.request("GET", "/app", token=old).status_code == 200


def test_developer_tokens_need_disable_auth_checks(server, client, user_id):
    client.upsert_user({"id": user_id})
    dev = b64({"alg": "HS256", "typ": "JWT"}) + "." + b64({"user_id": user_id}) + ".devtoken"
    assert_error(server.request("GET", "/app", token=dev), 401, 43)
    client.update_app_settings(disable_auth_checks=True)
    try:
        assert server.request("GET", "/app", token=dev).status_code == 200
    finally:
        client.update_app_settings(disable_auth_checks=False)
    assert server.request("GET", "/app", token=dev).status_code == 401


def test_deactivated_user_is_refused(server, client, user_id):
    client.upsert_user({"id": user_id})
    client.deactivate_user(user_id)
    assert_error(server.request("GET", "/app", token=server.user_token(user_id)), 401, 5)


def test_unknown_route_uses_the_envelope(server):
    assert_error(server.request("GET", "/no/such/route", token=server_token(server)), 404, 16)


def test_bad_json_body_is_an_input_error(server):
    resp = requests.patch(
        server.url + "/app",
        params={"api_key": server.api_key},
        headers={"Authorization": server_token(server), "stream-auth-type": "jwt", "Content-Type": "application/json"},
        data="{not json",
        timeout=5,
    )
    assert_error(resp, 400, 4)
