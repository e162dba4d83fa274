"""Push delivery end to end through chat-local: a Firebase provider whose `token_uri` and
`firebase_host` point at a loopback stand-in for Google (the OAuth token endpoint and FCM HTTP v1
`messages:send`). A `message.new` reaches the devices of offline members who should hear of it
with Stream's payload; an UNREGISTERED token removes its device; the sender, members watching
the channel, members who muted it and messages sent with `skip_push` get none; `check_push`
sends one push."""

import json
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from stream_chat.base.exceptions import StreamAPIException

PUSH_FIXTURES = Path(__file__).resolve().parents[2] / "shared/tests/fixtures/push"
FCM_KEY = (PUSH_FIXTURES / "fcm_key.pem").read_text()
FCM_PUB = (PUSH_FIXTURES / "fcm_pub.pem").read_text()
PROJECT = "chat-local-push"
SEND_PATH = f"/v1/projects/{PROJECT}/messages:send"


def uid(prefix="pd"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class FakeGoogle:
    """Google's OAuth token endpoint and FCM HTTP v1 on loopback (HTTP/1.1). Token requests must
    carry a JWT-bearer assertion signed with the service account's key; sends must carry an
    access token it issued. `sends` records each send as (token, message); a token starting with
    `dead-` is answered UNREGISTERED."""

    def __init__(self, client_email):
        self.client_email = client_email
        self.tokens_issued = []
        self.token_errors = []
        self.sends = []
        self.send_errors = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, status, doc):
                out = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/token":
                    self.answer(*outer.token(self.headers, body))
                elif self.path == SEND_PATH:
                    self.answer(*outer.send(self.headers, body))
                else:
                    with outer.lock:
                        outer.send_errors.append(f"unexpected path {self.path}")
                    self.answer(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": "no such path"}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.token_uri = self.url + "/token"

    def token(self, headers, body):
        form = urllib.parse.parse_qs(body.decode())
        try:
            assert headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"), headers.get("Content-Type")
            assert form.get("grant_type") == ["urn:ietf:params:oauth:grant-type:jwt-bearer"], form
            (assertion,) = form["assertion"]
            assert jwt.get_unverified_header(assertion)["alg"] == "RS256"
            claims = jwt.decode(assertion, FCM_PUB, algorithms=["RS256"], audience=self.token_uri)
            assert claims["iss"] == self.client_email, claims
            assert "https://www.googleapis.com/auth/firebase.messaging" in claims["scope"].split(), claims
            assert claims["exp"] > time.time() > claims["iat"] - 60, claims
        except (AssertionError, KeyError, ValueError, jwt.PyJWTError) as e:
            with self.lock:
                self.token_errors.append(f"{type(e).__name__}: {e}")
            return 400, {"error": "invalid_grant", "error_description": "bad assertion"}
        token = "ya29." + uuid.uuid4().hex
        with self.lock:
            self.tokens_issued.append(token)
        return 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}

    def send(self, headers, body):
        auth = headers.get("Authorization", "")
        with self.lock:
            issued = list(self.tokens_issued)
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in issued:
            with self.lock:
                self.send_errors.append(f"send with authorization {auth!r}")
            return 401, {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "bad token"}}
        message = json.loads(body)["message"]
        with self.lock:
            self.sends.append((message.get("token"), message))
        if str(message.get("token", "")).startswith("dead-"):
            return 404, {
                "error": {
                    "code": 404,
                    "message": "Requested entity was not found.",
                    "status": "NOT_FOUND",
                    "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}],
                }
            }
        return 200, {"name": f"projects/{PROJECT}/messages/{uuid.uuid4().hex}"}

    def sent_to(self, token):
        with self.lock:
            return [m for t, m in self.sends if t == token]

    def all_sends(self):
        with self.lock:
            return list(self.sends)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_for(check, seconds=10):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.fixture
def google():
    fake = FakeGoogle(f"{uid('sa')}@{PROJECT}.iam.gserviceaccount.com")
    yield fake
    fake.close()
    assert fake.token_errors == [], fake.token_errors
    assert fake.send_errors == [], fake.send_errors


@pytest.fixture
def provider(client, google):
    """A Firebase provider through the stand-in; deleted afterwards."""
    name = uid("fcm")
    credentials = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "k1",
        "private_key": FCM_KEY,
        "client_email": google.client_email,
        "token_uri": google.token_uri,
    }
    client.upsert_push_provider(
        {"name": name, "type": "firebase", "firebase_credentials": json.dumps(credentials), "firebase_host": google.url}
    )
    yield name
    try:
        client.delete_push_provider("firebase", name)
    except StreamAPIException as e:
        assert e.status_code == 404, e.response_text


@pytest.fixture
def room(client, provider):
    """Ann (the sender) and members Bob (a live device) and Cid (a dead one) in one channel, every
    device through the provider."""
    tag = uuid.uuid4().hex[:8]
    ann, bob, cid = f"ann-{tag}", f"bob-{tag}", f"cid-{tag}"
    client.upsert_users([{"id": ann, "name": f"Ann Sender {tag}"}, {"id": bob, "name": "Bob"}, {"id": cid, "name": "Cid"}])
    devices = {ann: f"live-ann-{tag}", bob: f"live-bob-{tag}", cid: f"dead-cid-{tag}"}
    for user, token in devices.items():
        client.add_device(token, "firebase", user, push_provider_name=provider)
    channel = client.channel("messaging", f"push-{tag}", {"members": [ann, bob, cid]})
    channel.create(ann)
    return {"ann": ann, "bob": bob, "cid": cid, "tag": tag, "devices": devices, "channel": channel}


def test_a_new_message_is_pushed_to_offline_members(client, google, room):
    ann, bob, cid, channel = room["ann"], room["bob"], room["cid"], room["channel"]
    bob_token, cid_token, ann_token = room["devices"][bob], room["devices"][cid], room["devices"][ann]
    sent = channel.send_message({"text": "hello from the push test"}, ann)["message"]

    assert wait_for(lambda: google.sent_to(bob_token)), f"no push reached bob; stand-in saw {google.all_sends()}"
    assert wait_for(lambda: client.get_devices(cid)["devices"] == []), (
        f"cid's UNREGISTERED device is still there: {client.get_devices(cid)['devices']}; sends {google.all_sends()}"
    )
    time.sleep(1)  # anything more for this message would be a duplicate
    (push,) = google.sent_to(bob_token)
    assert push["data"] == {
        "sender": "stream.chat",
        "type": "message.new",
        "version": "v2",
        "id": sent["id"],
        "message_id": sent["id"],
        "channel_type": "messaging",
        "channel_id": channel.id,
        "cid": channel.cid,
        "receiver_id": bob,
    }, push["data"]
    assert push["android"] == {"priority": "high"}, push
    aps = push["apns"]["payload"]["aps"]
    assert aps["alert"] == {"title": f"New message from Ann Sender {room['tag']}", "body": "hello from the push test"}, aps
    assert aps["badge"] == 1, aps
    assert len(google.sent_to(cid_token)) == 1, google.all_sends()
    assert google.sent_to(cid_token)[0]["data"]["receiver_id"] == cid
    assert google.sent_to(ann_token) == [], "the sender got a push for their own message"
    assert [d["id"] for d in client.get_devices(bob)["devices"]] == [bob_token]
    assert len(google.tokens_issued) >= 1

    # skip_push: nothing.
    before = len(google.all_sends())
    quiet = channel.send_message({"text": "no push for this one"}, ann, skip_push=True)["message"]
    time.sleep(2)
    assert google.all_sends()[before:] == [], google.all_sends()[before:]
    # The pipeline is still pushing: the next message arrives, and only it.
    loud = channel.send_message({"text": "and a push for this one"}, ann)["message"]
    assert wait_for(lambda: len(google.sent_to(bob_token)) == 2), google.all_sends()
    ids = [m["data"]["message_id"] for m in google.sent_to(bob_token)]
    assert ids == [sent["id"], loud["id"]] and quiet["id"] not in ids, ids
    assert google.sent_to(ann_token) == [] and len(google.sent_to(cid_token)) == 1


def test_watching_and_muting_members_get_no_push(server, client, google, provider, room):
    ann, bob, channel, tag = room["ann"], room["bob"], room["channel"], room["tag"]
    watcher, muter = f"wat-{tag}", f"mut-{tag}"
    client.upsert_users([{"id": watcher}, {"id": muter}])
    for user in (watcher, muter):
        client.add_device(f"live-{user}", "firebase", user, push_provider_name=provider)
    channel.add_members([watcher, muter])
    channel.mute(muter)
    ws, hello = server.connect_socket(watcher)
    try:
        watched = server.request(
            "POST",
            f"/channels/messaging/{channel.id}/query",
            token=server.user_token(watcher),
            params={"connection_id": hello["connection_id"]},
            json={"watch": True, "state": True},
        )
        assert watched.status_code == 200, watched.text
        sent = channel.send_message({"text": "who hears this"}, ann)["message"]
        assert wait_for(lambda: google.sent_to(room["devices"][bob])), google.all_sends()
        time.sleep(1.5)
    finally:
        ws.close()
    assert [m["data"]["message_id"] for m in google.sent_to(room["devices"][bob])] == [sent["id"]]
    assert google.sent_to(f"live-{watcher}") == [], "a member watching the channel got a push"
    assert google.sent_to(f"live-{muter}") == [], "a member who muted the channel got a push"
    assert google.sent_to(room["devices"][ann]) == [], "the sender got a push"


def test_check_push_sends_one_push(client, google, room):
    ann, bob, cid, channel = room["ann"], room["bob"], room["cid"], room["channel"]
    msg = channel.send_message({"text": "check me"}, ann, skip_push=True)["message"]
    r = client.check_push({"message_id": msg["id"], "user_id": bob})
    assert r["device_errors"] == {}, r
    pushes = google.sent_to(room["devices"][bob])
    assert len(pushes) == 1, google.all_sends()
    assert pushes[0]["data"]["message_id"] == msg["id"] and pushes[0]["data"]["receiver_id"] == bob, pushes[0]
    assert pushes[0]["apns"]["payload"]["aps"]["alert"]["body"] == "check me"
    # A dead token: its error, and the device is gone.
    r = client.check_push({"message_id": msg["id"], "user_id": cid})
    error = r["device_errors"][room["devices"][cid]]
    assert error["provider"] == "firebase" and "UNREGISTERED" in error["error_message"], r
    assert client.get_devices(cid)["devices"] == []
    # skip_devices renders without sending.
    before = len(google.all_sends())
    client.check_push({"message_id": msg["id"], "user_id": bob, "skip_devices": True})
    time.sleep(0.5)
    assert google.all_sends()[before:] == []
