"""Event hooks, black-box: every stored event reaches the app's webhooks (signed, retried,
ordered), SQS queues (standard and FIFO) and SNS topics, filtered by `event_types`; what a hook
would not take is kept as a failure and can be replayed; oversized events never go to a queue;
`check_sqs` / `check_sns`; server-side only. A private chat-local (hook settings are app-wide)
next to a moto server playing the customer's AWS account, and loopback webhook receivers."""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import jwt
import pytest
import requests

from conftest import BINARY, LocalServer, free_port

ROOT = Path(__file__).resolve().parents[2]
MOTO = Path(os.environ.get("MOTO_SERVER", ROOT / ".venv" / "bin" / "moto_server"))
ACCOUNT = "123456789012"
DEADLINE = 10
# Hook settings are cached by the server up to 1 s after they change.
SETTINGS_CACHE = 1.1
ENVELOPE_FIELDS = {"code", "message", "StatusCode", "duration", "more_info"}


def uid(prefix="h"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_for(predicate, what, timeout=DEADLINE, every=0.05):
    """Polls `predicate` until it returns something truthy; fails with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


# --- moto: the customer's AWS account ------------------------------------------------------


@pytest.fixture(scope="module")
def moto():
    if not MOTO.exists():
        pytest.fail(f"{MOTO} is missing: `.venv/bin/pip install 'moto[server]'`")
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)
    proc = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(endpoint + "/moto-api/", timeout=1)
            break
        except requests.RequestException:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto_server did not start; see {log.name}")
            time.sleep(0.05)
    yield endpoint
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    os.unlink(log.name)


class Aws:
    """boto3 against moto, as the customer."""

    key, secret = "AKIACUSTOMER", "customer-secret"

    def __init__(self, endpoint):
        kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=self.key, aws_secret_access_key=self.secret)
        self.sqs = boto3.client("sqs", **kw)
        self.sns = boto3.client("sns", **kw)

    def queue(self, fifo=False):
        name = uid("q") + (".fifo" if fifo else "")
        attrs = {"FifoQueue": "true"} if fifo else {}
        return self.sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]

    def topic(self):
        return self.sns.create_topic(Name=uid("t"))["TopicArn"]

    def subscribe(self, topic_arn, queue_url):
        arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)

    def receive(self, queue_url, into):
        """Appends what the queue holds now (received and deleted) to `into`; returns `into`."""
        while True:
            got = self.sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["MessageGroupId", "MessageDeduplicationId"],
            ).get("Messages", [])
            if not got:
                return into
            into.extend(got)
            self.sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)],
            )

    def collect(self, queue_url, done, what):
        """Receives from the queue until `done(messages)` holds."""
        messages = []
        wait_for(lambda: done(self.receive(queue_url, messages)), what, every=0.1)
        return messages


@pytest.fixture(scope="module")
def aws(moto):
    return Aws(moto)


# --- chat-local with its own app settings ----------------------------------------------------


@pytest.fixture(scope="module")
def hooks_server(moto):
    if not BINARY.exists():
        pytest.fail(f"{BINARY} is missing: build it with `cargo build --bin chat-local`")
    data_dir = tempfile.mkdtemp(prefix="chat-local-hooks-")
    env = {
        "AWS_ENDPOINT_URL_SNS": moto,
        "AWS_ACCESS_KEY_ID": "AKIASERVER",
        "AWS_SECRET_ACCESS_KEY": "server-secret",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    srv = LocalServer(data_dir, "hookkey" + uuid.uuid4().hex[:6], "hooksecret-" + uuid.uuid4().hex, env=env)
    srv.start()
    yield srv
    srv.stop()
    log = Path(data_dir, "server.log").read_text(errors="replace")
    if "panicked" in log:
        print("\nchat-local panicked during the hook tests:\n" + log[log.index("panicked") - 200 :][:4000])
    shutil.rmtree(data_dir, ignore_errors=True)


def server_token(srv):
    return jwt.encode({"server": True}, srv.api_secret, algorithm="HS256")


def configure(srv, **settings):
    """Replaces every hook of the app with `settings` and waits out the settings cache."""
    hooks = dict(
        webhook_url="",
        webhook_events=[],
        sqs_url="",
        sqs_key="",
        sqs_secret="",
        sns_topic_arn="",
        sns_key="",
        sns_secret="",
        event_hooks=[],
    )
    hooks.update(settings)
    srv.client().update_app_settings(**hooks)
    time.sleep(SETTINGS_CACHE)
    return srv.client().get_app_settings()["app"]


def failures(srv):
    resp = srv.request("GET", "/event_hooks/failures", token=server_token(srv))
    assert resp.status_code == 200, resp.text
    return resp.json()["failures"]


def users(client, n=2, **extra):
    ids = [uid("u") for _ in range(n)]
    client.upsert_users([{"id": i, **extra} for i in ids])
    return ids


def new_channel(client, members, creator=None):
    ch = client.channel("messaging", uid("ch"), {"members": members})
    ch.create(creator or members[0])
    return ch


def body_cid(body):
    return body.get("cid") or (body.get("channel") or {}).get("cid")


# --- webhook receivers -------------------------------------------------------------------


class Receiver:
    """A loopback webhook endpoint: records every request (headers, raw body, status answered);
    answers 500 to the next `fail_next` requests, or to all while `always_fail`."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        # The path of each request, in the same order.
        self.paths = []
        self.fail_next = 0
        self.always_fail = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    status = 200
                    if receiver.always_fail:
                        status = 500
                    elif receiver.fail_next > 0:
                        receiver.fail_next -= 1
                        status = 500
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, raw, status))
                    receiver.paths.append(self.path)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def all(self):
        with self.lock:
            return list(self.requests)

    def delivered(self):
        """(headers, raw body, parsed body) of the requests answered 2xx, in arrival order."""
        return [(h, raw, json.loads(raw)) for h, raw, status in self.all() if status == 200]

    def events(self, cid=None):
        return [b for _, _, b in self.delivered() if cid is None or body_cid(b) == cid]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receivers():
    made = []

    def make():
        r = Receiver()
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def message_ids(bodies, kind="message.new"):
    return [b["message"]["id"] for b in bodies if b.get("type") == kind]


# --- tests -------------------------------------------------------------------------------


def test_webhook_gets_every_event_signed(hooks_server, receivers):
    srv, client = hooks_server, hooks_server.client()
    hook = receivers()
    configure(srv, webhook_url=hook.url)
    a, b, c = users(client, 3)
    ch = new_channel(client, [a, b])
    msg = ch.send_message({"text": "hello"}, a)["message"]
    # (The members a message.new carries are checked against later changes in their own test.)
    wait_for(lambda: msg["id"] in message_ids(hook.events(ch.cid)), "the message.new")
    client.update_message({"id": msg["id"], "text": "hello, edited", "user_id": a})
    ch.send_reaction(msg["id"], {"type": "like"}, b)
    ch.add_members([c])
    client.delete_message(msg["id"])

    wanted = {"channel.created", "message.new", "message.updated", "reaction.new", "member.added", "message.deleted"}
    wait_for(lambda: wanted <= {e["type"] for e in hook.events(ch.cid)}, f"{sorted(wanted)} on the webhook")

    mine = [(h, raw, body) for h, raw, body in hook.delivered() if body_cid(body) == ch.cid]
    for h, raw, body in mine:
        assert client.verify_webhook(raw, h["x-signature"]), (body["type"], h)
        assert h["x-api-key"] == srv.api_key
        assert h.get("x-webhook-id") and h.get("x-webhook-attempt") == "1", h
        assert h["content-type"].startswith("application/json")
        assert not client.verify_webhook(raw + b" ", h["x-signature"])
    # One delivery id per event.
    ids = [h["x-webhook-id"] for h, _, _ in mine]
    assert len(ids) == len(set(ids)), ids
    # The channel's events arrive in the order they happened.
    order = [b["type"] for _, _, b in mine if not b["type"].startswith("notification.")]
    added_c = next(i for i, (_, _, b) in enumerate(x for x in mine if not x[2]["type"].startswith("notification."))
                   if b["type"] == "member.added" and b["member"]["user_id"] == c)
    steps = [order.index("channel.created"), order.index("message.new"), order.index("message.updated"),
             order.index("reaction.new"), added_c, order.index("message.deleted")]
    assert steps == sorted(steps), order
    # Stream's webhook events list leaves out the notifications sent to one user's connections.
    notified = [b["type"] for _, _, b in hook.delivered() if b["type"].startswith("notification.")]
    assert notified == [], notified

    new = next(b for b in hook.events(ch.cid) if b["type"] == "message.new")
    assert new["cid"] == ch.cid and new["channel_type"] == "messaging" and new["channel_id"] == ch.id
    assert new["message"]["id"] == msg["id"] and new["message"]["text"] == "hello"
    assert new["user"]["id"] == a and new["created_at"]
    assert isinstance(new["watcher_count"], int)
    assert sorted(m["user_id"] for m in new["members"]) == sorted([a, b]), new["members"]
    assert all(m["user"]["id"] == m["user_id"] for m in new["members"]), new["members"]
    added = [e["member"]["user_id"] for e in hook.events(ch.cid) if e["type"] == "member.added"]
    assert sorted(added) == sorted([a, b, c]) and added[-1] == c, added
    reaction = next(b for b in hook.events(ch.cid) if b["type"] == "reaction.new")
    assert reaction["reaction"]["type"] == "like" and reaction["reaction"]["user_id"] == b
    # Real-time-only events never reach a hook.
    assert not [b for b in hook.events() if b["type"].startswith(("typing.", "user.watching.", "health."))]


def test_webhook_retries_with_the_same_id_and_keeps_order(hooks_server, receivers):
    srv, client = hooks_server, hooks_server.client()
    hook = receivers()
    configure(srv, webhook_url=hook.url, webhook_events=["message.new"])
    a, b = users(client)
    ch = new_channel(client, [a, b])
    hook.fail_next = 2
    sent = [ch.send_message({"text": f"m{i}"}, a)["message"]["id"] for i in range(5)]

    wait_for(lambda: set(sent) <= set(message_ids(hook.events(ch.cid))), "all 5 messages on the webhook")

    requests_ = hook.all()
    first_headers, first_raw, _ = requests_[0]
    retried = [(h, raw, status) for h, raw, status in requests_ if h["x-webhook-id"] == first_headers["x-webhook-id"]]
    assert [h["x-webhook-attempt"] for h, _, _ in retried] == ["1", "2", "3"], retried
    assert [status for _, _, status in retried] == [500, 500, 200]
    assert {raw for _, raw, _ in retried} == {first_raw}, "a retry must send the same body"
    assert client.verify_webhook(first_raw, retried[-1][0]["x-signature"])
    # Nothing else was sent while the first event was being retried.
    assert all(h["x-webhook-id"] == first_headers["x-webhook-id"] for h, _, _ in requests_[:3])
    # Order kept: the first successful delivery of each message in send order.
    delivered = []
    for mid in message_ids(hook.events(ch.cid)):
        if mid not in delivered:
            delivered.append(mid)
    assert delivered == sent
    # webhook_events filters the legacy webhook.
    assert {b["type"] for b in hook.events()} == {"message.new"}


def test_event_types_filter_and_custom_events(hooks_server, receivers):
    srv, client = hooks_server, hooks_server.client()
    only, everything, custom_only = receivers(), receivers(), receivers()
    app = configure(
        srv,
        event_hooks=[
            {"hook_type": "webhook", "enabled": True, "webhook_url": only.url,
             "event_types": ["message.new", "reaction.new"], "should_send_custom_events": False},
            {"hook_type": "webhook", "enabled": True, "webhook_url": everything.url,
             "event_types": [], "should_send_custom_events": True, "timeout_ms": 3000},
            {"hook_type": "webhook", "enabled": True, "webhook_url": custom_only.url, "event_types": ["friend_request"]},
        ],
    )
    listed = app["event_hooks"]
    assert [h["webhook_url"] for h in listed] == [only.url, everything.url, custom_only.url]
    for h in listed:
        assert h["id"] and h["created_at"] and h["updated_at"] and h["hook_type"] == "webhook", h
    assert len({h["id"] for h in listed}) == 3
    assert listed[0]["event_types"] == ["message.new", "reaction.new"]
    assert listed[1]["should_send_custom_events"] is True and listed[1]["timeout_ms"] == 3000

    a, b = users(client)
    ch = new_channel(client, [a, b])
    msg = ch.send_message({"text": "filtered"}, a)["message"]
    ch.send_reaction(msg["id"], {"type": "love"}, b)
    client.update_message({"id": msg["id"], "text": "filtered, edited", "user_id": a})
    ch.send_event({"type": "friend_request", "note": "hi"}, b)
    ch.send_event({"type": "typing.start"}, a)
    ch.send_event({"type": "typing.stop"}, a)
    marker = ch.send_message({"text": "marker"}, a)["message"]["id"]

    # Events to one webhook keep their order: once the marker is in, everything before it is.
    wait_for(lambda: marker in message_ids(everything.events(ch.cid)), "the marker on the unfiltered hook")
    wait_for(lambda: marker in message_ids(only.events(ch.cid)), "the marker on the filtered hook")
    wait_for(lambda: custom_only.events(ch.cid), "the custom event on the hook that lists it")

    all_types = [b["type"] for b in everything.events(ch.cid)]
    assert {"channel.created", "message.new", "reaction.new", "message.updated", "friend_request"} <= set(all_types), all_types
    assert not [t for t in all_types if t.startswith("typing.")], all_types
    custom = next(b for b in everything.events(ch.cid) if b["type"] == "friend_request")
    assert custom["note"] == "hi" and custom["user"]["id"] == b

    assert {b["type"] for b in only.events()} <= {"message.new", "reaction.new"}
    only_types = [b["type"] for b in only.events(ch.cid)]
    assert only_types == ["message.new", "reaction.new", "message.new"], only_types
    assert [b["type"] for b in custom_only.events()] == ["friend_request"]


def test_sqs_standard_queue_gets_every_message(hooks_server, aws):
    srv, client = hooks_server, hooks_server.client()
    queue = aws.queue()
    configure(srv, sqs_url=queue, sqs_key=aws.key, sqs_secret=aws.secret)
    a, b = users(client)
    channels = [new_channel(client, [a, b]) for _ in range(3)]
    sent = {ch.cid: [ch.send_message({"text": f"{i}"}, a if i % 2 else b)["message"]["id"] for i in range(10)] for ch in channels}

    def complete(messages):
        got = {}
        for m in messages:
            body = json.loads(m["Body"])
            if body["type"] == "message.new":
                got.setdefault(body["cid"], set()).add(body["message"]["id"])
        return all(got.get(cid, set()) >= set(ids) for cid, ids in sent.items())

    messages = aws.collect(queue, complete, "30 message.new on the queue")
    for m in messages:
        body = json.loads(m["Body"])
        assert m["MessageAttributes"]["event_type"] == {"StringValue": body["type"], "DataType": "String"}, m
    news = [json.loads(m["Body"]) for m in messages if json.loads(m["Body"])["type"] == "message.new"]
    mine = [n for n in news if n["cid"] in sent]
    assert len({n["message"]["id"] for n in mine}) == 30
    for n in mine:
        assert len(n["members"]) == 2 and n["channel_type"] == "messaging" and "watcher_count" in n
    created = {json.loads(m["Body"]).get("cid") for m in messages if json.loads(m["Body"])["type"] == "channel.created"}
    assert set(sent) <= created


def test_sqs_fifo_keeps_a_channels_order(hooks_server, aws):
    srv, client = hooks_server, hooks_server.client()
    queue = aws.queue(fifo=True)
    configure(srv, event_hooks=[{"hook_type": "sqs", "enabled": True, "sqs_queue_url": queue, "sqs_key": aws.key,
                                 "sqs_secret": aws.secret, "sqs_auth_type": "keys"}])
    a, b = users(client)
    ch = new_channel(client, [a, b])
    sent = [ch.send_message({"text": f"fifo {i}"}, a)["message"]["id"] for i in range(20)]

    def received(messages):
        return set(sent) <= set(message_ids([json.loads(m["Body"]) for m in messages]))

    messages = aws.collect(queue, received, "20 message.new on the FIFO queue")
    bodies = [json.loads(m["Body"]) for m in messages]
    assert [i for i in message_ids(bodies) if i in sent] == sent
    for m, body in zip(messages, bodies):
        if body_cid(body) == ch.cid:
            # A channel's events are grouped by its cid.
            assert m["Attributes"]["MessageGroupId"] == ch.cid, m
        assert m["MessageAttributes"]["event_type"]["StringValue"] == body["type"]
    # Each event once: the deduplication ids are distinct.
    dedup = [m["Attributes"]["MessageDeduplicationId"] for m in messages]
    assert len(dedup) == len(set(dedup))


def test_sns_topic_reaches_a_subscribed_queue(hooks_server, aws):
    srv, client = hooks_server, hooks_server.client()
    topic, queue = aws.topic(), aws.queue()
    aws.subscribe(topic, queue)
    configure(srv, sns_topic_arn=topic, sns_key=aws.key, sns_secret=aws.secret)
    a, b = users(client)
    ch = new_channel(client, [a, b])
    mid = ch.send_message({"text": "via sns"}, a)["message"]["id"]

    def envelopes(messages):
        return [json.loads(m["Body"]) for m in messages]

    messages = aws.collect(queue, lambda ms: mid in message_ids([json.loads(e["Message"]) for e in envelopes(ms)]),
                           "the message.new via SNS")
    for envelope in envelopes(messages):
        assert envelope["TopicArn"] == topic
        event = json.loads(envelope["Message"])
        assert envelope["MessageAttributes"]["event_type"]["Value"] == event["type"], envelope
    new = next(json.loads(e["Message"]) for e in envelopes(messages) if json.loads(e["Message"])["type"] == "message.new")
    assert new["cid"] == ch.cid and sorted(m["user_id"] for m in new["members"]) == sorted([a, b])


def test_a_webhook_that_stays_down_keeps_failures_and_replays(hooks_server, aws, receivers):
    srv, client = hooks_server, hooks_server.client()
    hook, queue = receivers(), aws.queue()
    hook.always_fail = True
    app = configure(srv, event_hooks=[
        {"hook_type": "webhook", "enabled": True, "webhook_url": hook.url},
        {"hook_type": "sqs", "enabled": True, "sqs_queue_url": queue, "sqs_key": aws.key, "sqs_secret": aws.secret,
         "sqs_auth_type": "keys"},
    ])
    hook_id = app["event_hooks"][0]["id"]
    a, b = users(client)
    ch = new_channel(client, [a, b])
    sent = [ch.send_message({"text": f"down {i}"}, a)["message"]["id"] for i in range(3)]

    # The working hook is not held up by the broken one.
    aws.collect(queue, lambda ms: set(sent) <= set(message_ids([json.loads(m["Body"]) for m in ms])),
                "the 3 messages on the queue")

    def kept():
        mine = [f for f in failures(srv) if f["hook_id"] == hook_id]
        ids = message_ids([json.loads(f["body"]) for f in mine if f.get("body")])
        return mine if set(sent) <= set(ids) else None

    mine = wait_for(kept, "the webhook's failures")
    for f in mine:
        assert f["hook_type"] == "webhook" and f["id"] and f["event_id"] and f["failed_at"], f
        assert f["scope"] == ch.cid or f["scope"].startswith("user:"), f
        assert f["event_type"] == json.loads(f["body"])["type"]
    # The first event was tried 3 times and answered 500; the rest were kept (behind it, or
    # while the target's circuit was open).
    answered = [f for f in mine if "500" in f["error"]]
    assert answered and all(f["attempts"] == 3 for f in answered), mine
    # Every request the receiver saw was answered 500: attempts 1, 2, 3 of one delivery id.
    seen = hook.all()
    assert seen and all(status == 500 for _, _, status in seen)
    per_id = {}
    for h, _, _ in seen:
        per_id.setdefault(h["x-webhook-id"], []).append(h["x-webhook-attempt"])
    assert all(attempts == ["1", "2", "3"] for attempts in per_id.values()), per_id
    # After the first event used up its budget, the target's circuit opened: nothing else tried.
    assert len(per_id) == 1, per_id
    assert [f for f in mine if f["attempts"] == 0], "events kept without being tried while the circuit is open"
    assert {f["event_id"] for f in answered} <= set(per_id), (answered, per_id)

    hook.always_fail = False
    resp = srv.request("POST", "/event_hooks/failures/replay", token=server_token(srv), json={})
    assert resp.status_code == 200, resp.text
    replay = resp.json()
    assert replay["replayed"] >= len(mine), replay
    assert isinstance(replay["kept"], int)
    assert set(sent) <= set(message_ids(hook.events(ch.cid))), "replayed events reach the webhook"
    for h, raw, body in hook.delivered():
        assert client.verify_webhook(raw, h["x-signature"])
    left = [f for f in failures(srv) if f["hook_id"] == hook_id]
    assert left == [], left


def test_oversized_events_never_go_to_a_queue(hooks_server, aws):
    srv, client = hooks_server, hooks_server.client()
    queue = aws.queue()
    app = configure(srv, event_hooks=[{"hook_type": "sqs", "enabled": True, "sqs_queue_url": queue, "sqs_key": aws.key,
                                       "sqs_secret": aws.secret, "sqs_auth_type": "keys"}])
    hook_id = app["event_hooks"][0]["id"]
    big = users(client, 60, bio="b" * 4800)
    small = users(client, 2)
    large_channel = client.channel("messaging", uid("big"), {"members": big})
    large_channel.create(big[0])
    large = large_channel.send_message({"text": "to many"}, big[0])["message"]["id"]
    small_channel = new_channel(client, small)
    fine = small_channel.send_message({"text": "small"}, small[0])["message"]["id"]

    messages = aws.collect(queue, lambda ms: fine in message_ids([json.loads(m["Body"]) for m in ms]),
                           "the small channel's message.new")

    def oversized():
        return [f for f in failures(srv) if f["hook_id"] == hook_id and f["event_type"] == "message.new"
                and f["scope"] == large_channel.cid]

    kept = wait_for(oversized, "a failure for the oversized message.new")
    assert len(kept) == 1, kept
    f = kept[0]
    assert f["hook_type"] == "sqs" and f["attempts"] <= 1
    assert "262144" in f["error"] and "limit" in f["error"], f["error"]
    if f.get("body"):
        assert len(f["body"].encode()) > 262144 and json.loads(f["body"])["message"]["id"] == large
    assert large not in message_ids([json.loads(m["Body"]) for m in messages])
    assert all(len(m["Body"].encode()) <= 262144 for m in messages)
    # The big channel's smaller events still went to the queue.
    assert large_channel.cid in {body_cid(json.loads(m["Body"])) for m in messages}


def test_check_sqs_and_check_sns(hooks_server, aws):
    client = hooks_server.client()
    queue, topic = aws.queue(), aws.topic()
    assert client.check_sqs(aws.key, aws.secret, queue)["status"] == "ok"
    probe = aws.collect(queue, lambda ms: ms, "the check_sqs probe on the queue")
    assert len(probe) == 1
    bad = client.check_sqs(aws.key, aws.secret, "https://foo.com/bar")
    assert bad["status"] == "error" and "invalid SQS url" in bad["error"], bad
    missing = client.check_sqs(aws.key, aws.secret, queue.rsplit("/", 1)[0] + "/" + uid("nope"))
    assert missing["status"] == "error" and missing["error"], missing

    assert client.check_sns(aws.key, aws.secret, topic)["status"] == "ok"
    nope = client.check_sns(aws.key, aws.secret, f"arn:aws:sns:us-east-1:{ACCOUNT}:nope")
    assert nope["status"] == "error" and "publishing the message failed." in nope["error"], nope


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("POST", "/check_sqs", {"sqs_key": "k", "sqs_secret": "s", "sqs_url": "https://foo.com/bar"}),
        ("POST", "/check_sns", {"sns_key": "k", "sns_secret": "s", "sns_topic_arn": "arn:aws:sns:us-east-1:123456789012:x"}),
        ("GET", "/event_hooks/failures", None),
        ("POST", "/event_hooks/failures/replay", {}),
    ],
)
def test_hook_endpoints_are_server_side_only(hooks_server, method, path, body):
    srv = hooks_server
    user = uid("u")
    srv.client().upsert_user({"id": user})
    for role_claims in ({}, {"role": "admin"}):
        resp = srv.request(method, path, token=srv.user_token(user, **role_claims), json=body)
        assert resp.status_code == 403, (path, resp.status_code, resp.text)
        err = resp.json()
        assert ENVELOPE_FIELDS <= set(err) and err["StatusCode"] == 403 and err["code"] == 17, err
    assert srv.request(method, path, json=body).status_code == 401
    assert srv.request(method, path, token=server_token(srv), json=body).status_code == 200


def test_clearing_event_hooks_stops_deliveries(hooks_server, receivers):
    srv, client = hooks_server, hooks_server.client()
    cleared, legacy = receivers(), receivers()
    configure(srv, webhook_url=legacy.url,
              event_hooks=[{"hook_type": "webhook", "enabled": True, "webhook_url": cleared.url}])
    a, b = users(client)
    ch = new_channel(client, [a, b])
    before = ch.send_message({"text": "before"}, a)["message"]["id"]
    wait_for(lambda: before in message_ids(cleared.events(ch.cid)), "the first message on the event hook")
    wait_for(lambda: before in message_ids(legacy.events(ch.cid)), "the first message on the legacy webhook")

    client.update_app_settings(event_hooks=[])
    app = client.get_app_settings()["app"]
    assert app["event_hooks"] == [] and app["webhook_url"] == legacy.url
    time.sleep(SETTINGS_CACHE)
    seen = len(cleared.all())
    after = ch.send_message({"text": "after"}, a)["message"]["id"]
    # Both hooks are served by the same dispatch: once the legacy webhook has the event, the
    # cleared hook would have had it too.
    wait_for(lambda: after in message_ids(legacy.events(ch.cid)), "the second message on the legacy webhook")
    assert len(cleared.all()) == seen, [json.loads(raw)["type"] for _, raw, _ in cleared.all()[seen:]]

    # A disabled hook gets nothing either.
    configure(srv, webhook_url=legacy.url,
              event_hooks=[{"hook_type": "webhook", "enabled": False, "webhook_url": cleared.url}])
    assert client.get_app_settings()["app"]["event_hooks"][0]["enabled"] is False
    seen = len(cleared.all())
    last = ch.send_message({"text": "disabled"}, a)["message"]["id"]
    wait_for(lambda: last in message_ids(legacy.events(ch.cid)), "the third message on the legacy webhook")
    assert len(cleared.all()) == seen


def test_deliveries_resume_after_a_restart(hooks_server, receivers):
    """Restarts the module's server (the tests after it use the restarted one)."""
    srv = hooks_server
    hook = receivers()
    configure(srv, event_hooks=[{"hook_type": "webhook", "enabled": True, "webhook_url": hook.url,
                                 "event_types": ["message.new"]}])
    client = srv.client()
    a, b = users(client)
    ch = new_channel(client, [a, b])
    first = [ch.send_message({"text": f"r{i}"}, a)["message"]["id"] for i in range(5)]
    wait_for(lambda: set(first) <= set(message_ids(hook.events(ch.cid))), "the first 5 messages")
    # Sent just before the stop: delivered before it or after the restart, never lost.
    racing = [ch.send_message({"text": f"s{i}"}, a)["message"]["id"] for i in range(5)]
    srv.stop()
    srv.start()
    client = srv.client()
    ch = client.channel("messaging", ch.id)
    last = [ch.send_message({"text": f"t{i}"}, b)["message"]["id"] for i in range(5)]
    everything = first + racing + last
    wait_for(lambda: set(everything) <= set(message_ids(hook.events(ch.cid))), "all 15 messages after the restart")
    delivered = []
    for mid in message_ids(hook.events(ch.cid)):
        if mid not in delivered:
            delivered.append(mid)
    assert delivered == everything
    for h, raw, _ in hook.delivered():
        assert client.verify_webhook(raw, h["x-signature"])


def test_a_replayed_webhook_takes_new_events_again(hooks_server, receivers):
    """After a replay the target answered, its new events are sent, not kept as failures until
    the 30 s circuit runs out (replay closes the target's circuit)."""
    srv, client = hooks_server, hooks_server.client()
    hook = receivers()
    app = configure(srv, event_hooks=[{"hook_type": "webhook", "enabled": True, "webhook_url": hook.url,
                                       "event_types": ["message.new"]}])
    hook_id = app["event_hooks"][0]["id"]
    a, b = users(client)
    ch = new_channel(client, [a, b])
    hook.always_fail = True
    down = ch.send_message({"text": "while down"}, a)["message"]["id"]
    wait_for(lambda: [f for f in failures(srv) if f["hook_id"] == hook_id], "the failure")
    hook.always_fail = False
    resp = srv.request("POST", "/event_hooks/failures/replay", token=server_token(srv), json={})
    assert resp.status_code == 200 and resp.json()["replayed"] >= 1, resp.text
    assert down in message_ids(hook.events(ch.cid))

    later = ch.send_message({"text": "after the replay"}, a)["message"]["id"]
    wait_for(lambda: later in message_ids(hook.events(ch.cid))
             or [f for f in failures(srv) if f["hook_id"] == hook_id], "the new event delivered or kept")
    kept = [f for f in failures(srv) if f["hook_id"] == hook_id]
    assert kept == [], [(f["event_type"], f["attempts"], f["error"]) for f in kept]
    assert later in message_ids(hook.events(ch.cid))


def test_message_new_carries_the_members_it_was_sent_to(hooks_server, receivers):
    """A message.new body lists the channel's members when the message was sent, not when the
    hook got round to it: a member added right after the message is not in it."""
    srv, client = hooks_server, hooks_server.client()
    hook = receivers()
    configure(srv, event_hooks=[{"hook_type": "webhook", "enabled": True, "webhook_url": hook.url,
                                 "event_types": ["message.new"]}])
    a, b, c = users(client, 3)
    ch = new_channel(client, [a, b])
    # The first message is retried for ~1.5 s: what is committed meanwhile waits its turn.
    hook.fail_next = 2
    first = ch.send_message({"text": "first"}, a)["message"]["id"]
    wait_for(lambda: hook.all(), "the first attempt of the first message")
    second = ch.send_message({"text": "second"}, a)["message"]["id"]
    ch.add_members([c])
    wait_for(lambda: second in message_ids(hook.events(ch.cid)), "the second message")
    for body in hook.events(ch.cid):
        members = sorted(m["user_id"] for m in body["members"])
        assert members == sorted([a, b]), (body["message"]["text"], members, "c was added after the message")


def test_pending_messages_call_their_hooks_back(hooks_server, receivers):
    """A pending_message hook is passed each new pending message at `<url>/PassOnPendingMessage`
    (to commit or delete it) and hears of its deletion at `<url>/DeletedPendingMessage` (deleted,
    or still pending when its `timeout_ms` ran out: then it is gone), with the message and its
    metadata, signed. A commit calls nothing back."""
    srv, client = hooks_server, hooks_server.client()
    hook = receivers()
    configure(srv, event_hooks=[{"hook_type": "pending_message", "enabled": True, "webhook_url": hook.url,
                                 "timeout_ms": 2000, "callback": {"mode": "CALLBACK_MODE_REST"}}])
    a, b = users(client)
    ch = new_channel(client, [a, b])

    def callbacks(message_id):
        with hook.lock:
            seen = list(zip(hook.requests, hook.paths))
        return [(path, h, raw, json.loads(raw)) for (h, raw, status), path in seen
                if status == 200 and json.loads(raw)["message"]["id"] == message_id]

    held = ch.send_message({"text": "held"}, a, pending=True, pending_message_metadata={"my": "metadata"})["message"]
    [(path, h, raw, body)] = wait_for(lambda: callbacks(held["id"]), "the new pending message's callback")
    assert path == "/hook/PassOnPendingMessage", path
    assert body["metadata"] == {"my": "metadata"} and body["message"]["text"] == "held", body
    assert client.verify_webhook(raw, h["x-signature"])
    client.commit_message(held["id"])

    def deleted(message_id):
        return [c for c in callbacks(message_id) if c[0] == "/hook/DeletedPendingMessage"]

    withdrawn = ch.send_message({"text": "withdrawn"}, a, pending=True, pending_message_metadata={"n": "2"})["message"]
    client.delete_message(withdrawn["id"], hard=True)
    [(path, _, _, body)] = wait_for(lambda: deleted(withdrawn["id"]), "the delete's callback")
    assert body["metadata"] == {"n": "2"}, body
    assert [c[0] for c in callbacks(withdrawn["id"])] == ["/hook/PassOnPendingMessage", "/hook/DeletedPendingMessage"]

    forgotten = ch.send_message({"text": "forgotten"}, a, pending=True)["message"]
    wait_for(lambda: deleted(forgotten["id"]), "the timeout's callback")
    with pytest.raises(Exception) as gone:
        client.get_message(forgotten["id"])
    assert "404" in str(gone.value) or "does not exist" in str(gone.value), gone.value
    # The committed one stays.
    assert client.get_message(held["id"])["message"]["text"] == "held"
    # Callbacks go to the pending hook only: never as events to it, once each.
    assert all(p.startswith("/hook/") and p.endswith("PendingMessage") for p in hook.paths), hook.paths
    assert len(callbacks(held["id"])) == 1
