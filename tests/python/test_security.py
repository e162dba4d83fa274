"""Security properties, black-box: who a session is, which fields only the server controls,
token time claims, bounded input, rate limits, what client-side callers may read, batch
atomicity, the error envelope everywhere, a clean SIGTERM, and hostile input. Raw HTTP and
WebSockets with JWTs signed here, the official Python SDK where it has the call."""

import base64
import http.client
import json
import signal
import threading
import time
import urllib.parse
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jwt
import pytest
import requests
import websocket
from stream_chat.base.exceptions import StreamAPIException

ENVELOPE_FIELDS = {"code", "message", "StatusCode", "duration", "more_info"}
FULL_ENVELOPE_FIELDS = ENVELOPE_FIELDS | {"details"}
# What an error message must never show: store keys and Rust internals.
LEAKS = ("#", "app/", "storage failure", "expected struct", "unknown variant", "HS256, HS384", "Json(Error")


def uid(prefix="s"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def now():
    return int(time.time())


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def server_token(server, **claims):
    return jwt.encode({"server": True, **claims}, server.api_secret, algorithm="HS256")


def assert_error(resp, status, code):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert ENVELOPE_FIELDS <= set(body), body
    assert body["code"] == code, body
    assert body["StatusCode"] == status, body
    return body


def assert_no_leak(message):
    for leak in LEAKS:
        assert leak not in message, f"error message leaks {leak!r}: {message}"


def assert_full_envelope(resp, status):
    """Stream's error envelope, complete, as JSON (item 21)."""
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert FULL_ENVELOPE_FIELDS <= set(body), body
    assert body["StatusCode"] == status and isinstance(body["details"], list), body
    return body


def ws_connect(server, payload, token=None, auth_type="jwt"):
    """A WebSocket as the JS client opens it; returns the socket and its first frame."""
    params = {"json": json.dumps(payload), "api_key": server.api_key, "stream-auth-type": auth_type}
    if token is not None:
        params["authorization"] = token
    ws = websocket.create_connection(server.url.replace("http", "ws", 1) + "/connect?" + urllib.parse.urlencode(params), timeout=5)
    return ws, json.loads(ws.recv())


def read_frames(ws, seconds):
    """Frames received within `seconds`: JSON text frames, and `{"close": code}` for a close."""
    frames, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ws.settimeout(left)
        try:
            opcode, frame = ws.recv_data_frame(True)
        except (websocket.WebSocketTimeoutException, websocket.WebSocketConnectionClosedException):
            break
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            frames.append({"close": int.from_bytes(frame.data[:2], "big")})
            break
        if opcode == websocket.ABNF.OPCODE_TEXT:
            frames.append(json.loads(frame.data))
    return frames


def get_user(client, user_id):
    users = client.query_users({"id": user_id})["users"]
    return users[0] if users else None


@pytest.fixture
def dm(client):
    """alice and bob, and their private 1:1 messaging channel, created server-side."""
    alice, bob = uid("alice"), uid("bob")
    client.upsert_users([{"id": alice, "name": "Alice Private"}, {"id": bob}])
    ch = client.channel("messaging", uid("dm"), {"members": [alice, bob]})
    ch.create(bob)
    return alice, bob, ch


# 1. Anonymous sessions never impersonate ------------------------------------------------------


def test_anonymous_ws_connect_claiming_a_user_is_not_that_user(server, dm):
    alice, bob, ch = dm
    ws, hello = ws_connect(server, {"user_id": alice, "user_details": {"id": alice}}, auth_type="anonymous")
    try:
        assert hello["type"] == "health.check", hello
        me = hello.get("me") or {}
        assert me.get("id") != alice and str(me.get("id", "")).startswith("!anon"), me
        assert "Alice Private" not in json.dumps(hello), "the anonymous hello carries alice's user object"
        ch.send_message({"text": "for alice only"}, bob)
        frames = read_frames(ws, 2)
    finally:
        ws.close()
    leaked = [f for f in frames if f.get("cid") == ch.cid or "for alice only" in json.dumps(f)]
    assert leaked == [], f"an anonymous socket received alice's events: {[f.get('type') for f in leaked]}"


def test_anonymous_longpoll_claiming_a_user_is_not_that_user(server, dm):
    alice, bob, ch = dm
    payload = json.dumps({"user_id": alice, "user_details": {"id": alice}})
    opened = server.request("GET", "/longpoll", auth_type="anonymous", params={"json": payload})
    assert opened.status_code == 200, opened.text
    hello = opened.json()["event"]
    assert hello["me"]["id"] != alice and hello["me"]["id"].startswith("!anon"), hello["me"]
    conn = hello["connection_id"]
    ch.send_message({"text": "for alice only"}, bob)
    try:
        # Queued events come back at once; with none the poll is held, so a timeout means none.
        polled = requests.get(
            server.url + "/longpoll",
            params={"api_key": server.api_key, "connection_id": conn},
            headers={"stream-auth-type": "anonymous"},
            timeout=2.5,
        )
        events = polled.json().get("events", [])
    except requests.Timeout:
        events = []
    finally:
        server.request("GET", "/longpoll", auth_type="anonymous", params={"connection_id": conn, "close": "true"})
    assert not [e for e in events if e.get("cid") == ch.cid or "for alice only" in json.dumps(e)], events


# 2. A user token cannot set server-controlled fields ------------------------------------------


@pytest.fixture
def revoked_user(server, client):
    """A user whose tokens issued before a minute ago were revoked by the server, with a fresh
    token that still works."""
    me = uid("rv")
    client.upsert_user({"id": me})
    client.revoke_user_token(me, datetime.now(timezone.utc) - timedelta(seconds=60))
    revoked = get_user(client, me)["revoke_tokens_issued_before"]
    assert revoked
    return me, server.user_token(me, iat=now()), revoked


@pytest.mark.parametrize(
    "change",
    [
        {"unset": ["revoke_tokens_issued_before"]},
        {"set": {"revoke_tokens_issued_before": None}},
        {"set": {"revoke_tokens_issued_before": "2000-01-01T00:00:00Z"}},
        {"set": {"role": "admin"}},
        {"set": {"banned": True}},
        {"set": {"teams": ["red"]}},
        {"set": {"shadow_banned": True}},
        {"set": {"deactivated_at": "2020-01-01T00:00:00Z"}},
        {"set": {"deleted_at": "2020-01-01T00:00:00Z"}},
    ],
    ids=lambda c: json.dumps(c),
)
def test_server_fields_partial_update_by_user_is_refused(server, client, revoked_user, change):
    me, token, revoked = revoked_user
    resp = server.request("PATCH", "/users", token=token, json={"users": [{"id": me, **change}]})
    assert_error(resp, 403, 17)
    user = get_user(client, me)
    assert user["revoke_tokens_issued_before"] == revoked and user["role"] == "user"
    assert not user.get("banned") and not user.get("shadow_banned") and not user.get("teams")
    assert not user.get("deactivated_at") and not user.get("deleted_at")


def test_server_fields_upsert_of_oneself_as_admin_is_refused(server, client, user_id):
    client.upsert_user({"id": user_id})
    resp = server.request("POST", "/users", token=server.user_token(user_id), json={"users": {user_id: {"id": user_id, "role": "admin"}}})
    assert_error(resp, 403, 17)
    assert get_user(client, user_id)["role"] == "user"


@pytest.mark.parametrize("details", [{"role": "admin"}, {"revoke_tokens_issued_before": None}], ids=["role", "revocation"])
def test_server_fields_connect_user_details_are_refused(server, client, revoked_user, details):
    me, token, revoked = revoked_user
    ws, first = ws_connect(server, {"user_id": me, "user_details": {"id": me, **details}}, token=token)
    rest = read_frames(ws, 3)
    ws.close()
    assert "error" in first, f"connect with {details} was accepted: {first.get('type')}"
    assert rest and rest[-1].get("close") is not None, rest
    user = get_user(client, me)
    assert user["role"] == "user" and user["revoke_tokens_issued_before"] == revoked


def test_server_fields_guest_as_admin_is_refused(server, client):
    gid = uid("guest")
    resp = server.request("POST", "/guest", auth_type="anonymous", json={"user": {"id": gid, "role": "admin"}})
    assert_error(resp, 403, 17)
    guest = get_user(client, gid)
    assert guest is None or guest["role"] != "admin", guest


def test_server_fields_revocation_sticks_whatever_the_user_tries(server, client, user_id):
    client.upsert_user({"id": user_id})
    old = server.user_token(user_id, iat=now() - 120)
    assert server.request("GET", "/app", token=old).status_code == 200
    client.revoke_user_token(user_id, datetime.now(timezone.utc) - timedelta(seconds=30))
    assert_error(server.request("GET", "/app", token=old), 401, 42)
    fresh = server.user_token(user_id, iat=now())
    attempts = [
        ("PATCH", {"users": [{"id": user_id, "unset": ["revoke_tokens_issued_before"]}]}),
        ("PATCH", {"users": [{"id": user_id, "set": {"revoke_tokens_issued_before": None}}]}),
        ("PATCH", {"users": [{"id": user_id, "set": {"revoke_tokens_issued_before": "2000-01-01T00:00:00Z"}}]}),
        ("POST", {"users": {user_id: {"id": user_id, "revoke_tokens_issued_before": None}}}),
        ("POST", {"users": {user_id: {"id": user_id, "name": "replaced without the field"}}}),
    ]
    for method, body in attempts:
        server.request(method, "/users", token=fresh, json=body)
        assert_error(server.request("GET", "/app", token=old), 401, 42)
    ws, _ = ws_connect(server, {"user_id": user_id, "user_details": {"id": user_id, "revoke_tokens_issued_before": None}}, token=fresh)
    ws.close()
    assert_error(server.request("GET", "/app", token=old), 401, 42)


# 3. nbf and iat in the future -----------------------------------------------------------------


def test_nbf_in_the_future_is_refused_on_rest(server, client, user_id):
    client.upsert_user({"id": user_id})
    assert_error(server.request("GET", "/app", token=server.user_token(user_id, nbf=now() + 3600)), 401, 41)
    assert_error(server.request("GET", "/app", token=server_token(server, nbf=now() + 3600)), 401, 41)


def test_nbf_in_the_future_is_refused_on_connect(server, client, user_id):
    client.upsert_user({"id": user_id})
    ws, first = ws_connect(server, {"user_id": user_id, "user_details": {"id": user_id}}, token=server.user_token(user_id, nbf=now() + 3600))
    ws.close()
    assert "error" in first, f"connect with a future nbf was accepted: {first.get('type')}"
    assert first["error"]["code"] == 41 and first["error"]["StatusCode"] == 401, first


def test_nbf_server_token_issued_in_the_future_is_refused(server):
    assert_error(server.request("GET", "/app", token=server_token(server, iat=now() + 3600)), 401, 41)


def test_nbf_in_the_past_works(server, client, user_id):
    client.upsert_user({"id": user_id})
    assert server.request("GET", "/app", token=server.user_token(user_id, nbf=now() - 60)).status_code == 200
    assert server.request("GET", "/app", token=server_token(server, nbf=now() - 60, iat=now() - 60)).status_code == 200
    ws, hello = ws_connect(server, {"user_id": user_id, "user_details": {"id": user_id}}, token=server.user_token(user_id, nbf=now() - 60))
    ws.close()
    assert hello["type"] == "health.check", hello


# 4. Oversized filters -------------------------------------------------------------------------


def nested(depth, leaf):
    f = leaf
    for i in range(depth):
        f = {("$and" if i % 2 else "$or"): [f]}
    return f


def query_channels(server, token, filt):
    return server.request("POST", "/channels", token=token, json={"filter_conditions": filt, "sort": [], "state": True, "limit": 10})


def test_filter_huge_in_list_on_query_channels_is_refused_quickly(server, client, user_id):
    client.upsert_user({"id": user_id})
    token = server.user_token(user_id)
    started = time.monotonic()
    resp = query_channels(server, token, {"cid": {"$in": [f"messaging:{uuid.uuid4().hex}" for _ in range(32_000)]}})
    elapsed = time.monotonic() - started
    assert resp.status_code == 400 and elapsed < 5, f"{resp.status_code} after {elapsed:.1f} s"
    assert_error(resp, 400, 4)
    assert requests.get(server.url + "/health", timeout=2).status_code == 200


def test_filter_in_list_limit_on_query_channels(server, client, user_id):
    client.upsert_user({"id": user_id})
    token = server.user_token(user_id)
    cids = [f"messaging:{uuid.uuid4().hex[:12]}" for _ in range(1001)]
    assert_error(query_channels(server, token, {"cid": {"$in": cids}}), 400, 4)
    ok = query_channels(server, token, {"cid": {"$in": cids[:100]}})
    assert ok.status_code == 200, ok.text
    assert_error(query_channels(server, token, nested(100, {"members": {"$in": [user_id]}})), 400, 4)


def sdk_error(call):
    with pytest.raises(StreamAPIException) as e:
        call()
    return e.value


def test_filter_limits_on_query_users(client):
    # Numbers on a custom field keep the GET URL under 10 KB.
    for op in ("$in", "$nin"):
        e = sdk_error(lambda: client.query_users({"age": {op: list(range(1001))}}))
        assert e.status_code == 400 and e.error_code == 4, (op, e)
    assert "users" in client.query_users({"age": {"$in": list(range(100))}})
    e = sdk_error(lambda: client.query_users(nested(100, {"age": {"$gt": 1}})))
    assert e.status_code == 400 and e.error_code == 4, e


def test_filter_limits_on_query_members(client, dm):
    _, _, ch = dm
    e = sdk_error(lambda: ch.query_members({"level": {"$in": list(range(1001))}}))
    assert e.status_code == 400 and e.error_code == 4, e
    ch.query_members({"level": {"$in": list(range(100))}})
    e = sdk_error(lambda: ch.query_members(nested(100, {"level": {"$gt": 1}})))
    assert e.status_code == 400 and e.error_code == 4, e


# 5. Duplicate ids and error messages without internals ----------------------------------------


def test_duplicate_ids_in_user_mute_and_unmute(client):
    me, bob = uid("me"), uid("bob")
    client.upsert_users([{"id": me}, {"id": bob}])
    muted = client.mute_users([bob, bob], me)
    assert [m["target"]["id"] for m in muted["own_user"]["mutes"]] == [bob]
    client.unmute_users([bob, bob], me)
    again = client.mute_users([bob], me)  # unmuted, so one mute again
    assert [m["target"]["id"] for m in again["own_user"]["mutes"]] == [bob]


def test_duplicate_ids_in_channel_mute_and_unmute(server, client, dm):
    alice, _, ch = dm
    token = server_token(server)
    muted = server.request("POST", "/moderation/mute/channel", token=token, json={"channel_cids": [ch.cid, ch.cid], "user_id": alice})
    assert muted.status_code in (200, 201), muted.text
    assert [m["channel"]["cid"] for m in muted.json()["own_user"]["channel_mutes"]] == [ch.cid]
    unmuted = server.request("POST", "/moderation/unmute/channel", token=token, json={"channel_cids": [ch.cid, ch.cid], "user_id": alice})
    assert unmuted.status_code in (200, 201), unmuted.text


def test_duplicate_ids_alg_none_message_has_no_internals(server):
    token = b64({"alg": "none", "typ": "JWT"}) + "." + b64({"user_id": "mallory"}) + "."
    resp = server.request("GET", "/app", token=token)
    assert resp.status_code == 401, resp.text
    assert_no_leak(resp.json()["message"])


@pytest.mark.parametrize("body", ["null", '[{"text": "hi"}]', '{"message": null}', '{"message": []}', "42"])
def test_duplicate_ids_bad_send_message_body_has_no_internals(server, dm, body):
    alice, _, ch = dm
    resp = requests.post(
        server.url + f"/channels/messaging/{ch.id}/message",
        params={"api_key": server.api_key},
        headers={"Authorization": server.user_token(alice), "stream-auth-type": "jwt", "Content-Type": "application/json"},
        data=body,
        timeout=10,
    )
    assert_no_leak(assert_error(resp, 400, 4)["message"])


def test_duplicate_ids_common_errors_have_no_internals(server, client, dm):
    alice, _, ch = dm
    token = server.user_token(alice)
    answers = [
        server.request("GET", "/app", token="not.a.jwt"),
        server.request("GET", "/app", token=jwt.encode({"user_id": "x"}, "wrong", algorithm="HS256")),
        server.request("GET", "/app", token=jwt.encode({"user_id": "x"}, server.api_secret, algorithm="HS512")),
        server.request("POST", f"/channels/messaging/{ch.id}/message", token=token, json={"message": {"text": 5}}),
        server.request("POST", "/channels/nosuchtype/x/query", token=token, json={}),
        server.request("POST", "/messages/" + uid("nomsg") + "/reaction", token=token, json={"reaction": {"type": "like"}}),
        server.request("PATCH", "/users", token=token, json={"users": "x"}),
        server.request("GET", "/users", token=token, params={"payload": "{bad"}),
        server.request("POST", "/moderation/mute", token=token, json={"target_ids": [uid("ghost")]}),
    ]
    for resp in answers:
        assert resp.status_code >= 400, resp.text
        assert_no_leak(resp.json()["message"])


# 6. Rate limits -------------------------------------------------------------------------------


def flood(url, n, headers, params, threads=8):
    """`n` GETs from this process over a few keep-alive sessions; their responses in order."""
    results = [None] * n

    def work(k):
        s = requests.Session()
        for i in range(k, n, threads):
            results[i] = s.get(url, headers=headers, params=params, timeout=10)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return results


def bad_signature_flood(srv, n=2100):
    """Requests with a bad signature: over 1,000 a minute reach 429 even when a minute boundary
    falls inside the flood (2 × 1,000 + 100)."""
    token = jwt.encode({"server": True}, "not-the-secret", algorithm="HS256")
    return flood(srv.url + "/app", n, {"Authorization": token, "stream-auth-type": "jwt"}, {"api_key": srv.api_key}, threads=4)


def test_rate_limit_bad_signatures_are_throttled_but_legit_calls_pass(restartable):
    srv = restartable.start()
    client = srv.client()
    sender = uid("legit")
    client.upsert_user({"id": sender})
    ch = client.channel("messaging", uid("rl"), {"members": [sender]})
    ch.create(sender)
    statuses = [r.status_code for r in bad_signature_flood(srv)]
    assert statuses[0] == 401 and set(statuses) <= {401, 429}, sorted(set(statuses))
    assert 429 in statuses, "2,100 requests with a bad signature were never throttled"
    assert client.get_app_settings()["app"]
    sent = srv.request("POST", f"/channels/messaging/{ch.id}/message", token=srv.user_token(sender), json={"message": {"text": "still here"}})
    assert sent.status_code in (200, 201), sent.text


def test_rate_limit_429_has_retry_after_and_code_9(restartable):
    srv = restartable.start()
    throttled = [r for r in bad_signature_flood(srv) if r.status_code == 429]
    assert throttled, "no 429 to look at"
    r = throttled[0]
    assert r.headers.get("Retry-After", "").isdigit(), r.headers
    assert 0 < int(r.headers["Retry-After"]) <= 3600
    assert_error(r, 429, 9)


def test_rate_limit_per_user_per_endpoint(restartable):
    srv = restartable.start()
    client = srv.client()
    flooder, other = uid("flood"), uid("calm")
    client.upsert_users([{"id": flooder}, {"id": other}])
    payload = {"payload": json.dumps({"filter_conditions": {"id": flooder}})}
    s = requests.Session()
    headers = {"Authorization": srv.user_token(flooder), "stream-auth-type": "jwt"}
    statuses = []
    # ≤ 1,000 a minute; 2,100 requests reach 429 even if a minute boundary falls inside.
    for _ in range(2100):
        statuses.append(s.get(srv.url + "/users", headers=headers, params={"api_key": srv.api_key, **payload}, timeout=10).status_code)
        if statuses[-1] != 200:
            break
    assert statuses[-1] == 429, f"{len(statuses)} requests of one user, last status {statuses[-1]}"
    calm = srv.request("GET", "/users", token=srv.user_token(other), params={"payload": json.dumps({"filter_conditions": {"id": other}})})
    assert calm.status_code == 200, calm.text
    assert client.query_users({"id": flooder})["users"][0]["id"] == flooder


def test_rate_limit_get_rate_limits(client):
    limits = client.get_rate_limits(server_side=True, web=True)
    for platform in ("server_side", "web"):
        assert limits[platform], limits
        for name, budget in limits[platform].items():
            assert {"limit", "remaining", "reset"} <= set(budget), (platform, name, budget)
            assert budget["limit"] > 0 and 0 <= budget["remaining"] <= budget["limit"]
    only = client.get_rate_limits(server_side=True, endpoints=["QueryChannels", "SendMessage"])
    assert set(only["server_side"]) == {"QueryChannels", "SendMessage"}, only


def test_get_rate_limits_is_server_side_only(server, client):
    member, guest_id = uid("rl-user"), uid("rl-guest")
    client.upsert_users([{"id": member}])
    guest = server.request("POST", "/guest", auth_type="anonymous", json={"user": {"id": guest_id}})
    assert guest.status_code in (200, 201), guest.text
    for kwargs in (
        {"token": server.user_token(member)},
        {"token": guest.json()["access_token"]},
        {"auth_type": "anonymous"},
    ):
        assert_error(server.request("GET", "/rate_limits", **kwargs), 403, 17)
    assert server.request("GET", "/rate_limits", token=server_token(server)).status_code == 200


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_rate_limit_memory_is_bounded_for_unknown_paths(restartable):
    srv = restartable.start()
    pad = "x" * 1000  # long paths make per-path state visible in the RSS
    paths = [f"/nope/{uuid.uuid4().hex}/{pad}" for _ in range(20_500)]
    results = [None] * len(paths)

    host, port = srv.url.removeprefix("http://").split(":")

    def run(lo, hi, threads=8):
        def work(k):
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            for i in range(lo + k, hi, threads):
                conn.request("GET", f"{paths[i]}?api_key={srv.api_key}")
                r = conn.getresponse()
                results[i] = (r.status, json.loads(r.read()).get("code"))
            conn.close()

        ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    run(0, 500)  # warm up
    before = rss_kb(srv.proc.pid)
    run(500, len(paths))
    grown_mb = (rss_kb(srv.proc.pid) - before) / 1024
    assert results[0] == (404, 16), results[0]
    assert set(results) <= {(404, 16), (429, 9)}, set(results)
    assert grown_mb < 10, f"RSS grew by {grown_mb:.1f} MB over 20,000 unknown paths"
    assert requests.get(srv.url + "/health", timeout=2).status_code == 200


# 7. Client-side GET /app hides secrets --------------------------------------------------------

APP_SECRETS = {
    "sqs_url": "https://sqs.us-east-1.amazonaws.com/123/queue-sekrit",
    "sqs_key": "sqs-key-sekrit",
    "sqs_secret": "sqs-secret-sekrit",
    "sns_topic_arn": "arn:aws:sns:us-east-1:123:topic-sekrit",
    "sns_key": "sns-key-sekrit",
    "sns_secret": "sns-secret-sekrit",
    "webhook_url": "https://hooks.example.com/webhook-sekrit",
    "before_message_send_hook_url": "https://hooks.example.com/before-sekrit",
    "custom_action_handler_url": "https://hooks.example.com/action-sekrit",
}
PUSH_FIXTURES = Path(__file__).resolve().parents[2] / "shared/tests/fixtures/push"
APNS_KEY = (PUSH_FIXTURES / "apns_key.p8").read_text()
FCM_KEY = (PUSH_FIXTURES / "fcm_key.pem").read_text()
# Push credentials must parse (a .p8 EC key, a service account with an RSA key): real test keys.
PUSH_SECRETS = {
    "apn_config": {"auth_type": "token", "auth_key": APNS_KEY, "key_id": "k", "team_id": "t", "bundle_id": "b"},
    "firebase_config": {
        "credentials_json": json.dumps(
            {
                "type": "service_account",
                "project_id": "sekrit-project",
                "private_key_id": "sekrit-key-id",
                "private_key": FCM_KEY,
                "client_email": "push@sekrit-project.iam.gserviceaccount.com",
            }
        )
    },
}
# What must never be read back: a line of each key's body, any PEM private key, the account.
PUSH_KEY_MARKS = (APNS_KEY.splitlines()[1], FCM_KEY.splitlines()[1], "PRIVATE KEY", "sekrit-key-id", "sekrit-project")


def test_app_secrets_hidden_from_client_side_callers(restartable):
    srv = restartable.start()
    client = srv.client()
    client.update_app_settings(**APP_SECRETS, **PUSH_SECRETS)
    try:
        server_app = client.get_app_settings()["app"]
        for key, value in APP_SECRETS.items():
            assert server_app[key] == value, key
        assert server_app["grants"]
        # Push credentials are written, never read back, not even server-side: the legacy configs
        # read back as push_notifications, without secrets.
        server_dump = json.dumps(server_app)
        leaked = [mark[:20] for mark in PUSH_KEY_MARKS if mark in server_dump]
        assert leaked == [], f"server-side /app shows push key material {leaked}"
        assert [k for k in PUSH_SECRETS if k in server_app] == [], "server-side /app returns the legacy push configs"
        push = server_app["push_notifications"]
        assert push["apn"]["enabled"] is True and push["apn"]["key_id"] == "k", push
        assert push["apn"]["team_id"] == "t" and push["apn"]["bundle_id"] == "b", push
        assert push["firebase"]["enabled"] is True, push
        user = uid("peek")
        client.upsert_user({"id": user})
        for caller in ({"token": srv.user_token(user)}, {"auth_type": "anonymous"}):
            resp = srv.request("GET", "/app", **caller)
            assert resp.status_code == 200, resp.text
            app = resp.json()["app"]
            shown = [k for k in (*APP_SECRETS, "grants") if k in app]
            assert shown == [], f"client-side /app ({caller.get('auth_type', 'user')}) shows {shown}"
            dump = json.dumps(resp.json())
            assert "sekrit" not in dump, "a secret value reaches a client-side caller"
            leaked = [mark[:20] for mark in PUSH_KEY_MARKS if mark in resp.text]
            assert leaked == [], f"client-side /app ({caller.get('auth_type', 'user')}) shows push key material {leaked}"
    finally:
        client.update_app_settings(apn_config={"Disabled": True}, firebase_config={"Disabled": True})
    push = client.get_app_settings()["app"]["push_notifications"]
    assert push["apn"]["enabled"] is False and push["firebase"]["enabled"] is False, push


# 8. Batch delete with an unknown id -----------------------------------------------------------


def test_batch_delete_with_an_unknown_id_deletes_nothing_silently(client):
    known = uid("keep")
    client.upsert_user({"id": known})
    try:
        answer = client.delete_users([known, uid("unknown-xyz")], "soft")
    except StreamAPIException:
        answer = None
    if answer is not None and answer.get("task_id"):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and client.get_task(answer["task_id"])["status"] not in ("completed", "failed"):
            time.sleep(0.1)
    user = get_user(client, known)
    assert user is not None and not user.get("deleted_at"), f"the known user was deleted: {user}"


# 18. Anonymous writes are 403 code 17 ---------------------------------------------------------


def test_anonymous_writes_are_not_allowed(server, client, dm):
    alice, _, ch = dm
    msg = ch.send_message({"text": "hello"}, alice)["message"]
    writes = [
        ("POST", f"/channels/messaging/{ch.id}/message", {"message": {"text": "anon"}}),
        ("POST", f"/channels/livestream/{uid('anonch')}/query", {"data": {"name": "mine"}}),
        ("POST", f"/channels/messaging/{uid('anonch')}/query", {"data": {"members": [alice]}}),
        ("POST", f"/messages/{msg['id']}/reaction", {"reaction": {"type": "like"}}),
        ("PATCH", "/users", {"users": [{"id": alice, "set": {"name": "anon was here"}}]}),
        ("POST", "/users", {"users": {alice: {"id": alice, "name": "anon was here"}}}),
    ]
    for method, path, body in writes:
        resp = server.request(method, path, auth_type="anonymous", json=body)
        assert resp.status_code == 403 and resp.json()["code"] == 17, (method, path, resp.status_code, resp.text)
    assert get_user(client, alice)["name"] == "Alice Private"


# 21. Every error is in the envelope -----------------------------------------------------------


def raw_request(server, method, target, headers=None, body=None):
    """A request sent as given (no client-side URL normalisation)."""
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request(method, target, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def check_raw_envelope(status, headers, data, expected):
    assert status == expected, (status, data[:300])
    assert headers.get("content-type", "").startswith("application/json"), headers
    body = json.loads(data)
    assert FULL_ENVELOPE_FIELDS <= set(body) and isinstance(body["details"], list), body
    assert body["StatusCode"] == expected, body


def test_envelope_on_a_uri_over_10kb(server):
    target = f"/app?api_key={server.api_key}&pad=" + "a" * 11_000
    status, headers, data = raw_request(server, "GET", target, {"Authorization": server_token(server), "stream-auth-type": "jwt"})
    check_raw_envelope(status, headers, data, 414)


def test_envelope_on_headers_over_64kb(server):
    headers = {"Authorization": server_token(server), "stream-auth-type": "jwt", "X-Padding": "b" * 70_000}
    status, got, data = raw_request(server, "GET", f"/app?api_key={server.api_key}", headers)
    check_raw_envelope(status, got, data, 431)


def test_envelope_on_invalid_utf8_in_a_path_segment(server, client, user_id):
    client.upsert_user({"id": user_id})
    headers = {"Authorization": server.user_token(user_id), "stream-auth-type": "jwt", "Content-Type": "application/json"}
    status, got, data = raw_request(server, "POST", f"/channels/messaging/%FF%FE/message?api_key={server.api_key}", headers, b'{"message": {"text": "x"}}')
    check_raw_envelope(status, got, data, 400)
    assert json.loads(data)["code"] == 4


def test_envelope_on_text_plain_json_body(server, dm):
    alice, _, ch = dm
    resp = requests.post(
        server.url + f"/channels/messaging/{ch.id}/message",
        params={"api_key": server.api_key},
        headers={"Authorization": server.user_token(alice), "stream-auth-type": "jwt", "Content-Type": "text/plain"},
        data=json.dumps({"message": {"text": "plain"}}),
        timeout=10,
    )
    if resp.status_code in (200, 201):
        assert resp.json()["message"]["text"] == "plain"
    else:
        assert_full_envelope(resp, resp.status_code)
        assert resp.status_code in (400, 415), resp.text


def test_envelope_on_an_empty_body(server, dm):
    alice, _, ch = dm
    resp = requests.post(
        server.url + f"/channels/messaging/{ch.id}/message",
        params={"api_key": server.api_key},
        headers={"Authorization": server.user_token(alice), "stream-auth-type": "jwt", "Content-Type": "application/json"},
        data=b"",
        timeout=10,
    )
    assert assert_full_envelope(resp, 400)["code"] == 4


def test_envelope_on_common_errors_has_details(server):
    assert assert_full_envelope(server.request("GET", "/app"), 401)["code"] == 5
    assert assert_full_envelope(server.request("GET", "/no/such/route", token=server_token(server)), 404)["code"] == 16


# 22. SIGTERM closes every socket with 1012 ----------------------------------------------------


def test_sigterm_closes_every_socket_with_1012(restartable):
    srv = restartable.start()
    sockets = []
    for i in range(20):
        user = uid(f"term{i}")
        ws, hello = ws_connect(srv, {"user_id": user, "user_details": {"id": user}}, token=srv.user_token(user))
        assert hello["type"] == "health.check", hello
        sockets.append(ws)
    srv.proc.send_signal(signal.SIGTERM)
    codes = []
    for ws in sockets:
        frames = read_frames(ws, 5)
        codes.append(next((f["close"] for f in frames if "close" in f), None))
        ws.close()
    assert srv.proc.wait(timeout=15) is not None
    assert codes == [1012] * 20, codes


# Hostile input --------------------------------------------------------------------------------


def test_hostile_malformed_tokens(server):
    huge = b64({"alg": "HS256", "typ": "JWT"}) + "." + b64({"user_id": "x" * 100_000}) + ".sig"
    for token in ("!!!.@@@.###", "abc.def", "a.b.c.d", "....", "eyJ.eyJ.", "Bearer ", "é.é.é"):
        resp = server.request("GET", "/app", token=token)
        assert resp.status_code == 401 and resp.json()["code"] in (5, 43), (token, resp.status_code, resp.text)
        assert_no_leak(resp.json()["message"])
    resp = server.request("GET", "/app", token=huge)
    assert resp.status_code in (401, 431) and resp.json()["StatusCode"] == resp.status_code, resp.text


@pytest.mark.parametrize("bad_id", ["a b", "../etc", "<script>", "a#b", "app/x", "a\nb", "x" * 300, ""])
def test_hostile_token_for_a_bad_user_id(server, bad_id):
    resp = server.request("GET", "/app", token=jwt.encode({"user_id": bad_id}, server.api_secret, algorithm="HS256"))
    assert resp.status_code == 401 and resp.json()["code"] == 5, resp.text


def test_hostile_megabyte_custom_fields(server, client, dm):
    alice, _, ch = dm
    big = "z" * (1024 * 1024)
    token = server.user_token(alice)
    answers = [
        server.request("POST", "/users", token=server_token(server), json={"users": {alice: {"id": alice, "bio": big}}}),
        server.request("POST", f"/channels/messaging/{ch.id}/message", token=token, json={"message": {"text": "hi", "blob": big}}),
        server.request("POST", f"/channels/messaging/{ch.id}", token=server_token(server), json={"data": {"blob": big}}),
    ]
    for resp in answers:
        assert resp.status_code in (400, 413) and resp.json()["code"] in (4, 22), resp.text[:300]
    assert "bio" not in get_user(client, alice)


def test_hostile_input_leaves_the_server_healthy(server):
    assert requests.get(server.url + "/health", timeout=2).status_code == 200


def test_a_connection_id_of_another_user_is_refused(server, client):
    alice, mallory = uid("alice"), uid("mallory")
    client.upsert_users([{"id": alice}, {"id": mallory}])
    ch = client.channel("messaging", uid("conn"), {"members": [alice, mallory]})
    ch.create(alice)
    ws, hello = ws_connect(server, {"user_id": alice, "user_details": {"id": alice}}, server.user_token(alice))
    try:
        conn = hello["connection_id"]
        body = {"filter_conditions": {"cid": ch.cid}, "watch": True, "presence": True}
        stolen = server.request("POST", "/channels", token=server.user_token(mallory), params={"connection_id": conn}, json=body)
        assert_error(stolen, 403, 17)
        own = server.request("POST", "/channels", token=server.user_token(alice), params={"connection_id": conn}, json=body)
        assert own.status_code == 200, own.text
        anon = server.request("POST", "/channels", auth_type="anonymous", params={"connection_id": conn}, json=body)
        assert_error(anon, 403, 17)
    finally:
        ws.close()
