"""What the segment and campaign tests share: ids, times, refusals in Stream's envelope, raw
requests, users, campaign polling, the messages a campaign sent, the wire shapes, and the
fixtures (a sender, a private server with a crowd of 3,000 users)."""

import json
import select
import shutil
import socket
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from stream_chat.base.exceptions import StreamAPIException
from stream_chat.types.segment import SegmentType

import envelope
from conftest import JsonEndpoint, LocalServer, private_app
from test_push_delivery import google, provider  # noqa: F401 (fixtures)

# Debug builds on 2-core CI deliver a few hundred messages a second: generous deadlines, but a
# test returns as soon as what it waits for holds.
SETTLE = 90
# Rust internals that must never reach an error message (on top of envelope.LEAKS).
RUST_LEAKS = ("::", "Option<", "Vec<", "struct ", "enum ", "panicked", "unwrap", "rusqlite", "sqlite", "Error {")


def uid(prefix="cp"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def iso(dt):
    return dt.isoformat()


def parse_time(value):
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def refused(resp, status=400, code=None):
    """A raw refusal in Stream's envelope, leaking nothing; returns its body."""
    if code is None:
        code = {400: 4, 403: 17, 404: 16}.get(status)
    return envelope.assert_error(resp, status, code, extra_leaks=RUST_LEAKS)


def sdk_refused(call, status=400):
    with pytest.raises(StreamAPIException) as e:
        call()
    err = e.value
    assert err.status_code == status, (err.status_code, err.response_text)
    body = json.loads(err.response_text)
    assert envelope.ENVELOPE_FIELDS <= set(body) and body["StatusCode"] == status, body
    envelope.assert_no_leak(body["message"], RUST_LEAKS)
    assert body["code"] == {400: 4, 403: 17, 404: 16}[status], body
    return body


def api(server, client, method, path, body=None, **kw):
    """A raw request with the server token."""
    if body is not None:
        kw["json"] = body
    return server.request(method, path, token=client.auth_token, **kw)


def make_users(client, n, prefix, **extra):
    ids = [f"{prefix}-{i:04}" for i in range(n)]
    for i in range(0, n, 100):
        client.upsert_users([{"id": x, "name": f"Name of {x}", **extra} for x in ids[i : i + 100]])
    return ids


def get_campaign(client, cid):
    return client.get_campaign(cid)["campaign"]


def wait_campaign(client, cid, statuses=("completed",), timeout=SETTLE):
    deadline = time.monotonic() + timeout
    while True:
        camp = get_campaign(client, cid)
        if camp["status"] in statuses:
            return camp
        if time.monotonic() > deadline:
            pytest.fail(f"campaign {cid} is {camp['status']} after {timeout} s (stats {camp['stats']}), not {statuses}")
        time.sleep(0.1)


def channels_where(client, filter_conditions, cids=None):
    """Every channel matching the filter, with up to 25 messages each: pages of 30 (query
    channels takes offsets up to 1000); past that, `cids` (the candidates) 30 at a time."""
    found, offset = [], 0
    while offset <= 1000:
        page = client.query_channels(filter_conditions, [{"field": "cid", "direction": 1}], limit=30, offset=offset, messages_limit=25)[
            "channels"
        ]
        found += page
        if len(page) < 30:
            return found
        offset += 30
    assert cids is not None, f"more than {offset} channels match {filter_conditions}"
    found = []
    for i in range(0, len(cids), 30):
        found += client.query_channels({**filter_conditions, "cid": {"$in": cids[i : i + 30]}}, limit=30, messages_limit=25)["channels"]
    return found


def campaign_messages(channel_states, campaign_id):
    """{cid: [the campaign's messages in that channel]} over query-channels states."""
    return {
        st["channel"]["cid"]: [m for m in st["messages"] if m.get("campaign_id") == campaign_id] for st in channel_states
    }


def sent_count(client, tag, campaign_id, cids=None):
    return sum(len(v) for v in campaign_messages(channels_where(client, {"camp": tag}, cids), campaign_id).values())


def guest_token(server):
    r = server.request("POST", "/guest", auth_type="anonymous", json={"user": {"id": uid("guest")}})
    assert r.status_code in (200, 201), r.text
    return r.json()["access_token"]


SEGMENT_FIELDS = {
    "id", "type", "name", "description", "filter", "all_users", "all_sender_channels", "size", "created_at", "updated_at", "deleted_at",
}
CAMPAIGN_FIELDS = {
    "id", "segment_ids", "segments", "sender_id", "sender_mode", "sender_visibility", "name", "create_channels", "show_channels",
    "description", "skip_push", "skip_webhook", "user_ids", "users", "status", "created_at", "updated_at", "stats", "message_template",
}
STATS_FIELDS = {
    "stats_started_at", "stats_completed_at", "stats_messages_sent", "stats_channels_created", "progress", "stats_users_sent",
    "stats_users_read",
}


def assert_segment_shape(seg):
    assert SEGMENT_FIELDS <= set(seg), sorted(SEGMENT_FIELDS - set(seg))
    assert seg["type"] in ("user", "channel") and isinstance(seg["size"], int), seg
    parse_time(seg["created_at"]), parse_time(seg["updated_at"])


def assert_campaign_shape(camp):
    assert CAMPAIGN_FIELDS <= set(camp), sorted(CAMPAIGN_FIELDS - set(camp))
    assert STATS_FIELDS <= set(camp["stats"]), camp["stats"]
    assert camp["status"] in ("draft", "scheduled", "in_progress", "completed", "stopped"), camp["status"]


@pytest.fixture
def sender(client):
    sid = uid("sender")
    client.upsert_user({"id": sid, "name": "Sally Sender"})
    return sid


@pytest.fixture(scope="module")
def big():
    """A private chat-local for the big campaigns: their thousands of users and messaging
    channels would crowd the shared server's queries and searches (search looks into 500
    channels at most)."""
    data_dir = tempfile.mkdtemp(prefix="chat-local-campaigns-")
    srv = LocalServer(data_dir, "campkey" + uuid.uuid4().hex[:6], "campsecret-" + uuid.uuid4().hex)
    srv.start()
    yield srv
    srv.stop()
    log = Path(data_dir, "server.log").read_text(errors="replace")
    if "panicked" in log:
        print("\nchat-local panicked during the campaign tests:\n" + log[log.index("panicked") - 200 :][:4000])
    shutil.rmtree(data_dir, ignore_errors=True)


class Crowd:
    def __init__(self, client, users, sender):
        self.client, self.users, self.sender = client, users, sender


@pytest.fixture(scope="module")
def crowd(big):
    """3,000 users and a sender on the private server."""
    client = big.client()
    users = make_users(client, 3000, "crowd")
    client.upsert_user({"id": "crowd-sender", "name": "Sally Sender"})
    return Crowd(client, users, "crowd-sender")


# Segments: SDK flows ---------------------------------------------------------------------------
