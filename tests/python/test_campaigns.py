"""Segments and campaigns, black-box, through the official Python SDK (`client.segment(...)`,
`client.campaign(...)` and the client's segment/campaign calls) and raw HTTP where the SDK has no
call: the upstream SDK flows (segment CRUD, targets with deterministic paging, segment query,
campaign CRUD, scheduled start and stop, campaign query); what is refused (validation, the
"not supported yet" options, bounded inputs) with Stream's error envelope and no leak; delivery
(channels created from the channel template, rendered text, `campaign_id` on the message,
sender_mode "exclude", existing distinct channels, channel segments by targets and by
all_sender_channels, segments overlapping, filter and all_users segments), stats at completion,
stop mid-way, scheduled start, `stop_at`, `skip_webhook`, `skip_push`, no duplicate after a
SIGKILL and restart mid-campaign; the stop route reading the `{}` body the SDK sends; and every
route server-side only (users, admins, guests and anonymous refused).

Campaigns are asynchronous: tests poll `GET /campaigns/{id}` until the status settles. Most tests
use the session's shared server with ids of their own (few campaign calls: the server-side budget
of the create/update/start/stop routes is 60 a minute); those that change app settings
(webhooks), restart the server or send thousands of messages use a private chat-local."""

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


def test_t1_segment_crud(server, client):
    seg = client.segment(SegmentType.USER, data={"name": "test_segment", "description": "test_description"})
    created = seg.create()
    assert "segment" in created and "id" in created["segment"] and "name" in created["segment"], created
    s = created["segment"]
    assert_segment_shape(s)
    assert seg.segment_id == s["id"] and s["id"], s
    uuid.UUID(s["id"])  # generated ids are UUIDs
    assert (s["type"], s["name"], s["description"], s["filter"], s["size"], s["deleted_at"]) == (
        "user", "test_segment", "test_description", None, 0, None,
    ), s
    assert s["all_users"] is False and s["all_sender_channels"] is False

    got = seg.get()
    assert got["segment"]["name"] == created["segment"]["name"] and got["segment"] == s, (got, s)

    time.sleep(0.01)
    updated = seg.update({"name": "updated_name", "description": "updated_description"})
    u = updated["segment"]
    assert u["name"] == "updated_name" and u["description"] == "updated_description", u
    assert u["id"] == s["id"] and u["type"] == "user" and u["created_at"] == s["created_at"], u
    assert parse_time(u["updated_at"]) > parse_time(s["updated_at"]), (s, u)
    # Only the keys sent change.
    u2 = seg.update({"name": "renamed"})["segment"]
    assert (u2["name"], u2["description"]) == ("renamed", "updated_description"), u2
    assert seg.get()["segment"]["name"] == "renamed"

    deleted = seg.delete()
    assert set(deleted) <= {"duration"}, deleted
    sdk_refused(seg.get, 404)
    sdk_refused(lambda: seg.update({"name": "x"}), 404)
    sdk_refused(lambda: seg.add_targets(["a"]), 404)
    sdk_refused(seg.delete, 404)
    assert client.query_segments({"id": {"$eq": s["id"]}})["segments"] == []

    # An explicit id is kept; the same id again is refused.
    mine = uid("seg")
    assert client.create_segment(SegmentType.USER, segment_id=mine)["segment"]["id"] == mine
    sdk_refused(lambda: client.create_segment(SegmentType.USER, segment_id=mine))
    client.delete_segment(mine)


def test_t2_segment_targets_with_deterministic_paging(client):
    seg = client.segment(segment_type=SegmentType.USER)
    created = seg.create()
    assert "id" in created["segment"] and "name" in created["segment"], created
    ids = [f"t{i:02}" for i in range(10)]
    assert set(seg.add_targets(target_ids=ids)) <= {"duration"}
    assert seg.get()["segment"]["size"] == 10
    # Adding again is idempotent.
    seg.add_targets(target_ids=ids[:4] + ["t00"])
    assert seg.get()["segment"]["size"] == 10

    assert set(seg.target_exists(target_id=ids[0])) <= {"duration"}
    sdk_refused(lambda: seg.target_exists(target_id="t10"), 404)

    # Pages of 3, with the same filter and sort each time, until `next` is "".
    flt, asc = {"target_id": {"$lte": "t08"}}, [{"field": "target_id", "direction": 1}]
    q1 = seg.query_targets(filter_conditions=flt, sort=asc, options={"limit": 3})
    assert "targets" in q1 and "next" in q1 and q1["next"], q1
    assert [t["target_id"] for t in q1["targets"]] == ["t00", "t01", "t02"], q1
    t = q1["targets"][0]
    assert t["segment_id"] == seg.segment_id and isinstance(t["app_pk"], int) and parse_time(t["created_at"]), t
    q2 = seg.query_targets(filter_conditions=flt, sort=asc, options={"limit": 3, "next": q1["next"]})
    assert "targets" in q2 and "next" in q2 and len(q2["targets"]) == 3, q2
    assert [t["target_id"] for t in q2["targets"]] == ["t03", "t04", "t05"], q2
    seen, cursor = [t["target_id"] for t in q1["targets"] + q2["targets"]], q2["next"]
    for _ in range(5):
        if not cursor:
            break
        page = seg.query_targets(filter_conditions=flt, sort=asc, options={"limit": 3, "next": cursor})
        assert "next" in page, page
        seen += [t["target_id"] for t in page["targets"]]
        cursor = page["next"]
    assert cursor == "" and seen == ids[:9], (cursor, seen)

    # The default order is target_id ascending; descending; each operator.
    assert [t["target_id"] for t in seg.query_targets()["targets"]] == ids
    desc = seg.query_targets(sort=[{"field": "target_id", "direction": -1}], options={"limit": 4})
    assert [t["target_id"] for t in desc["targets"]] == ["t09", "t08", "t07", "t06"] and desc["next"], desc
    desc2 = seg.query_targets(sort=[{"field": "target_id", "direction": -1}], options={"limit": 4, "next": desc["next"]})
    assert [t["target_id"] for t in desc2["targets"]] == ["t05", "t04", "t03", "t02"], desc2

    def only(f):
        page = seg.query_targets(filter_conditions={"target_id": f})
        assert page["next"] == "", page
        return [t["target_id"] for t in page["targets"]]

    assert only({"$eq": "t03"}) == ["t03"]
    assert only("t04") == ["t04"]
    assert only({"$in": ["t07", "t01", "zz"]}) == ["t01", "t07"]
    assert only({"$gt": "t07"}) == ["t08", "t09"]
    assert only({"$gte": "t08"}) == ["t08", "t09"]
    assert only({"$lt": "t02"}) == ["t00", "t01"]
    assert only({"$lte": "t01"}) == ["t00", "t01"]
    assert only({"$gt": "t03", "$lt": "t06"}) == ["t04", "t05"]

    # limit defaults to 100.
    more = [f"u{i:03}" for i in range(140)]
    seg.add_targets(more)
    page = seg.query_targets()
    assert len(page["targets"]) == 100 and page["next"], len(page["targets"])
    rest = seg.query_targets(options={"next": page["next"]})
    assert len(rest["targets"]) == 50 and rest["next"] == "", (len(rest["targets"]), rest["next"])
    assert [t["target_id"] for t in page["targets"] + rest["targets"]] == ids + more

    # Refused: prev, another sort field, another filter field or operator, a cursor from nowhere.
    sdk_refused(lambda: seg.query_targets(options={"limit": 3, "prev": q2["next"]}))
    sdk_refused(lambda: seg.query_targets(sort=[{"field": "created_at", "direction": 1}]))
    sdk_refused(lambda: seg.query_targets(filter_conditions={"created_at": {"$gte": "2020-01-01T00:00:00Z"}}))
    sdk_refused(lambda: seg.query_targets(filter_conditions={"target_id": {"$ne": "t01"}}))
    sdk_refused(lambda: seg.query_targets(options={"next": "not-a-cursor"}))

    seg.remove_targets(target_ids=ids)
    assert seg.get()["segment"]["size"] == 140
    sdk_refused(lambda: seg.target_exists(target_id=ids[0]), 404)
    # Removing what is not there is no error.
    seg.remove_targets(target_ids=["t00", "never-there"])
    seg.delete()


def test_t3_query_segments(client):
    created = client.create_segment(segment_type=SegmentType.USER)
    sid = created["segment"]["id"]
    client.add_segment_targets(segment_id=sid, target_ids=[str(uuid.uuid4()) for _ in range(10)])
    q = client.query_segments(filter_conditions={"id": {"$eq": sid}}, sort=[{"field": "created_at", "direction": -1}])
    assert len(q["segments"]) == 1 and q["segments"][0]["id"] == sid and q["segments"][0]["size"] == 10, q
    assert_segment_shape(q["segments"][0])

    # Several, by name, default order created_at desc, paged with next.
    tag = uid("qs")
    made = [client.create_segment(SegmentType.USER, data={"name": f"{tag}-{i}"})["segment"]["id"] for i in range(3)]
    made.append(client.create_segment(SegmentType.CHANNEL, data={"name": f"{tag}-3"})["segment"]["id"])
    names = [f"{tag}-{i}" for i in range(4)]
    everything = client.query_segments({"name": {"$in": names}})
    assert [s["id"] for s in everything["segments"]] == made[::-1], everything
    assert not everything.get("next"), everything
    asc = client.query_segments({"name": {"$in": names}}, sort=[{"field": "created_at", "direction": 1}])
    assert [s["id"] for s in asc["segments"]] == made
    paged, nxt = [], None
    for _ in range(6):
        page = client.query_segments({"name": {"$in": names}}, options={"limit": 1, **({"next": nxt} if nxt else {})})
        assert len(page["segments"]) <= 1
        paged += [s["id"] for s in page["segments"]]
        nxt = page.get("next")
        if not nxt:
            break
    assert paged == made[::-1], paged
    users_only = client.query_segments({"name": {"$in": names}, "type": "user"})
    assert {s["id"] for s in users_only["segments"]} == set(made[:3]), users_only
    channels_only = client.query_segments({"name": {"$in": names}, "type": {"$in": ["channel"]}})
    assert [s["id"] for s in channels_only["segments"]] == [made[3]], channels_only
    assert [s["id"] for s in client.query_segments({"name": f"{tag}-1"})["segments"]] == [made[1]]

    sdk_refused(lambda: client.query_segments({"bogus": 1}))
    sdk_refused(lambda: client.query_segments({}, options={"limit": 101}))

    client.delete_segment(made[0])
    assert [s["id"] for s in client.query_segments({"name": {"$in": names}})["segments"]] == made[:0:-1]
    client.remove_segment_targets(segment_id=sid, target_ids=[str(uuid.uuid4())])
    client.delete_segment(segment_id=sid)
    for s in made[1:]:
        client.delete_segment(s)


def test_e1_all_users_and_filter_segments_count_active_users():
    """A private app, so that all_users counts exactly the users made here."""
    with private_app("segcount") as client:
        tag = uid("grp")
        users = [{"id": f"m{i}-{tag}", "grp": tag, "lvl": i} for i in range(5)]
        client.upsert_users(users + [{"id": f"other-{tag}", "grp": "elsewhere"}])
        client.deactivate_user(f"m3-{tag}")
        client.delete_user(f"m4-{tag}")

        # JS-style: "id": null, all_users.
        r = requests.post(
            client.base_url + "/segments",
            params={"api_key": client.api_key},
            headers={"Authorization": client.auth_token, "stream-auth-type": "jwt", "Content-Type": "application/json"},
            data=json.dumps({"id": None, "type": "user", "name": "everyone", "all_users": True}),
            timeout=10,
        )
        assert r.status_code in (200, 201), r.text
        everyone = r.json()["segment"]
        assert_segment_shape(everyone)
        uuid.UUID(everyone["id"])
        assert everyone["all_users"] is True and everyone["name"] == "everyone", everyone
        # m0, m1, m2 and other (m3 deactivated, m4 deleted).
        assert everyone["size"] == 4, everyone

        by_filter = client.create_segment(SegmentType.USER, data={"filter": {"grp": tag}})["segment"]
        assert by_filter["filter"] == {"grp": tag} and by_filter["size"] == 3, by_filter
        narrower = client.update_segment(by_filter["id"], {"filter": {"grp": tag, "lvl": {"$gte": 1}}})["segment"]
        assert narrower["size"] == 2 and narrower["filter"] == {"grp": tag, "lvl": {"$gte": 1}}, narrower
        client.reactivate_user(f"m3-{tag}")
        client.upsert_user({"id": f"m5-{tag}", "grp": tag, "lvl": 5})
        again = client.update_segment(by_filter["id"], {"filter": {"grp": tag, "lvl": {"$gte": 1}}})["segment"]
        assert again["size"] == 4, again  # m1, m2, m3 (back), m5

        # The campaign reaches the segment's matching, active users.
        client.upsert_user({"id": f"boss-{tag}", "name": "Boss"})
        client.deactivate_user(f"m2-{tag}")
        camp = client.create_campaign(
            data={
                "sender_id": f"boss-{tag}",
                "segment_ids": [by_filter["id"]],
                "message_template": {"text": "level {{ receiver.lvl }}"},
                "create_channels": True,
                "channel_template": {"type": "messaging", "id": "f-{{ receiver.id }}"},
            }
        )["campaign"]
        client.start_campaign(camp["id"])
        done = wait_campaign(client, camp["id"])
        states = channels_where(client, {"type": "messaging"})
        got = {st["channel"]["id"]: [m["text"] for m in st["messages"]] for st in states}
        assert got == {f"f-m1-{tag}": ["level 1"], f"f-m3-{tag}": ["level 3"], f"f-m5-{tag}": ["level 5"]}, got
        assert done["stats"]["stats_messages_sent"] == 3 and done["stats"]["stats_users_sent"] == 3, done["stats"]


def test_e2_channel_segments_take_cids(server, client, sender):
    tag = uid("chseg")
    seg = client.segment(SegmentType.CHANNEL, f"seg-{tag}", {"name": "channels"})
    s = seg.create()["segment"]
    assert s["id"] == f"seg-{tag}" and s["type"] == "channel", s
    cids = [f"messaging:{tag}-a", f"messaging:{tag}-b"]
    seg.add_targets(cids)
    assert seg.get()["segment"]["size"] == 2
    # The SDK puts the cid raw in the path; JS percent-encodes it.
    seg.target_exists(cids[0])
    enc = api(server, client, "GET", f"/segments/seg-{tag}/target/messaging%3A{tag}-b")
    assert enc.status_code == 200, enc.text
    refused(api(server, client, "GET", f"/segments/seg-{tag}/target/messaging%3A{tag}-zzz"), 404)
    assert [t["target_id"] for t in seg.query_targets()["targets"]] == cids

    # Not supported yet: a channel filter. all_users is for user segments, all_sender_channels
    # for channel segments.
    body = sdk_refused(lambda: client.create_segment(SegmentType.CHANNEL, data={"filter": {"team": "commonteam"}}))
    assert "not supported yet" in body["message"], body
    sdk_refused(lambda: seg.update({"filter": {"team": "commonteam"}}))
    sdk_refused(lambda: client.create_segment(SegmentType.CHANNEL, data={"all_users": True}))
    sdk_refused(lambda: client.create_segment(SegmentType.USER, data={"all_sender_channels": True}))

    # A campaign on a channel segment posts into each target channel.
    a, b = uid("ca"), uid("cb")
    client.upsert_users([{"id": a, "name": "Ann"}, {"id": b, "name": "Ben"}])
    client.channel("messaging", f"{tag}-a", {"members": [a, sender]}).create(a)
    client.channel("messaging", f"{tag}-b", {"members": [b]}).create(b)
    seg.add_targets([f"messaging:{tag}-missing"])
    camp = client.create_campaign(
        data={"sender_id": sender, "segment_ids": [s["id"]], "message_template": {"text": "in {{ channel.id }} to [{{ receiver.name }}]"}}
    )["campaign"]
    client.start_campaign(camp["id"])
    done = wait_campaign(client, camp["id"])
    assert done["stats"]["stats_messages_sent"] == 2 and done["stats"]["stats_channels_created"] == 0, done["stats"]
    states = channels_where(client, {"cid": {"$in": cids + [f"messaging:{tag}-missing"]}})
    msgs = {st["channel"]["id"]: [(m["text"], m["user"]["id"], m["campaign_id"]) for m in st["messages"]] for st in states}
    assert msgs == {
        f"{tag}-a": [(f"in {tag}-a to []", sender, camp["id"])],
        f"{tag}-b": [(f"in {tag}-b to []", sender, camp["id"])],
    }, msgs
    seg.delete()

    # all_sender_channels: every channel the sender is a member of (a and c, not b); its size
    # is not counted and it takes no targets.
    client.channel("messaging", f"{tag}-c", {"members": [sender, b]}).create(b)
    mine = client.create_segment(SegmentType.CHANNEL, data={"all_sender_channels": True})["segment"]
    assert mine["all_sender_channels"] is True and mine["size"] == 0, mine
    sdk_refused(lambda: client.add_segment_targets(mine["id"], [f"messaging:{tag}-b"]))
    camp2 = client.create_campaign(data={"sender_id": sender, "segment_ids": [mine["id"]], "message_template": {"text": "to all of mine"}})[
        "campaign"
    ]
    client.start_campaign(camp2["id"])
    done = wait_campaign(client, camp2["id"])
    assert done["stats"]["stats_messages_sent"] == 2 and done["stats"]["stats_channels_created"] == 0, done["stats"]
    states = channels_where(client, {"cid": {"$in": cids + [f"messaging:{tag}-c"]}})
    got = {st["channel"]["id"]: [m["text"] for m in st["messages"] if m.get("campaign_id") == camp2["id"]] for st in states}
    assert got == {f"{tag}-a": ["to all of mine"], f"{tag}-b": [], f"{tag}-c": ["to all of mine"]}, got
    client.delete_segment(mine["id"])


def test_segment_refusals(server, client):
    cases = [
        ({"type": "user", "all_users": True, "filter": {"a": 1}}, "together"),
        ({"type": "user", "all_users": True, "all_sender_channels": True}, "together"),
        ({"type": "bogus"}, ""),
        ({}, "type"),
        ({"type": "user", "name": "n" * 129}, "name"),
        ({"type": "user", "description": "d" * 257}, "description"),
        ({"type": "user", "id": "i" * 256}, "id"),
        ({"type": "user", "all_users": "yes"}, ""),
    ]
    for body, says in cases:
        got = refused(api(server, client, "POST", "/segments", body), 400)
        assert says in got["message"], (body, got)
    sid = client.create_segment(SegmentType.USER)["segment"]["id"]
    for body in ({"name": "n" * 129}, {"description": "d" * 257}):
        refused(api(server, client, "PUT", f"/segments/{sid}", body), 400)
    for method, path, body in [
        ("GET", "/segments/nope-" + sid, None),
        ("PUT", "/segments/nope-" + sid, {"name": "x"}),
        ("DELETE", "/segments/nope-" + sid, None),
        ("POST", f"/segments/nope-{sid}/addtargets", {"target_ids": ["a"]}),
        ("POST", f"/segments/nope-{sid}/deletetargets", {"target_ids": ["a"]}),
        ("POST", f"/segments/nope-{sid}/targets/query", {}),
        ("GET", f"/segments/nope-{sid}/target/a", None),
    ]:
        refused(api(server, client, method, path, body), 404)
    client.delete_segment(sid)


def test_segment_bounded_inputs(server, client):
    seg = client.segment(SegmentType.USER)
    seg.create()
    path = f"/segments/{seg.segment_id}"
    body = refused(api(server, client, "POST", path + "/addtargets", {"target_ids": [f"x{i}" for i in range(10001)]}), 400)
    assert "10000" in body["message"], body
    refused(api(server, client, "POST", path + "/addtargets", {"target_ids": []}), 400)
    refused(api(server, client, "POST", path + "/addtargets", {}), 400)
    assert seg.get()["segment"]["size"] == 0
    # 10,000 at once is fine, and a page may hold them all.
    seg.add_targets([f"x{i:05}" for i in range(10000)])
    assert seg.get()["segment"]["size"] == 10000
    page = seg.query_targets(options={"limit": 10000})
    assert len(page["targets"]) == 10000 and page["next"] == "", (len(page["targets"]), page["next"])
    body = refused(api(server, client, "POST", path + "/deletetargets", {"target_ids": [f"x{i:05}" for i in range(101)]}), 400)
    assert "100" in body["message"], body
    refused(api(server, client, "POST", path + "/deletetargets", {"target_ids": []}), 400)
    assert seg.get()["segment"]["size"] == 10000
    seg.remove_targets([f"x{i:05}" for i in range(100)])
    assert seg.get()["segment"]["size"] == 9900
    refused(api(server, client, "POST", path + "/targets/query", {"limit": 10001}), 400)
    refused(api(server, client, "POST", "/segments/query", {"limit": 101}), 400)
    # The async SDK deletes with a body of {}.
    assert api(server, client, "DELETE", path, {}).status_code == 200
    refused(api(server, client, "GET", path), 404)


# Campaigns: SDK flows --------------------------------------------------------------------------


def test_t4_campaign_crud(server, client, sender):
    sid = client.create_segment(segment_type=SegmentType.USER)["segment"]["id"]
    camp = client.campaign(data={"message_template": {"text": "{Hello}"}, "segment_ids": [sid], "sender_id": sender, "name": "some name"})
    created = camp.create(data={"name": "created name"})
    c = created["campaign"]
    assert c["name"] == "created name" and camp.campaign_id == c["id"], c
    uuid.UUID(c["id"])
    assert_campaign_shape(c)
    assert "users" in created, created
    assert (c["status"], c["sender_id"], c["segment_ids"], c["user_ids"], c["message_template"]["text"]) == (
        "draft", sender, [sid], [], "{Hello}",
    ), c
    assert [s["id"] for s in c["segments"]] == [sid], c["segments"]
    assert c["stats"]["stats_messages_sent"] == 0 and c["stats"]["progress"] == 0, c["stats"]
    assert c["stats"]["stats_started_at"] is None and c["stats"]["stats_completed_at"] is None, c["stats"]
    assert c["sender_mode"] is None and c["sender_visibility"] is None and c["create_channels"] is False, c

    got = camp.get()
    assert got["campaign"]["name"] == c["name"] and got["campaign"]["id"] == c["id"], got
    time.sleep(0.01)
    updated = camp.update({"message_template": {"text": "{Hello}"}, "segment_ids": [sid], "sender_id": sender, "name": "updated_name"})
    assert "campaign" in updated and updated["campaign"]["name"] == "updated_name", updated
    assert parse_time(updated["campaign"]["updated_at"]) > parse_time(c["updated_at"]), updated["campaign"]
    assert updated["campaign"]["created_at"] == c["created_at"]
    assert camp.get()["campaign"]["name"] == "updated_name"
    # An update switches the targets to user_ids.
    other = camp.update({"message_template": {"text": "new"}, "segment_ids": [], "user_ids": [sender], "sender_id": sender})["campaign"]
    assert other["user_ids"] == [sender] and other["segment_ids"] == [] and other["message_template"]["text"] == "new", other

    deleted = camp.delete()
    assert set(deleted) <= {"duration"}, deleted
    sdk_refused(camp.get, 404)
    sdk_refused(camp.delete, 404)
    sdk_refused(lambda: camp.update({"message_template": {"text": "x"}, "sender_id": sender}), 404)
    assert client.query_campaigns({"id": {"$eq": c["id"]}})["campaigns"] == []
    client.delete_segment(segment_id=sid)

    # An explicit id is kept.
    mine = uid("camp")
    made = client.create_campaign(mine, {"sender_id": sender, "message_template": {"text": "x"}})["campaign"]
    assert made["id"] == mine
    sdk_refused(lambda: client.create_campaign(mine, {"sender_id": sender, "message_template": {"text": "x"}}))
    client.delete_campaign(mine)


def test_t5_campaign_start_stop(client, sender):
    sid = client.create_segment(segment_type=SegmentType.USER)["segment"]["id"]
    client.add_segment_targets(segment_id=sid, target_ids=[sender])
    camp = client.campaign(data={"message_template": {"text": "{Hello}"}, "segment_ids": [sid], "sender_id": sender, "name": "some name"})
    assert camp.create()["campaign"]["status"] == "draft"
    now = datetime.now(timezone.utc).replace(microsecond=0)
    started = camp.start(scheduled_for=now + timedelta(hours=1), stop_at=now + timedelta(hours=2))
    s = started["campaign"]
    assert s["id"] == camp.campaign_id and s["name"] == "some name" and s["status"] == "scheduled", s
    assert parse_time(s["scheduled_for"]) == now + timedelta(hours=1), s["scheduled_for"]
    assert parse_time(s["stop_at"]) == now + timedelta(hours=2), s["stop_at"]
    assert s["stats"]["stats_started_at"] is None and s["stats"]["stats_messages_sent"] == 0, s["stats"]
    assert camp.get()["campaign"]["status"] == "scheduled"
    # Sent once only; no update once started.
    body = sdk_refused(lambda: camp.start())
    assert "scheduled" in body["message"], body
    sdk_refused(lambda: camp.update({"message_template": {"text": "x"}, "sender_id": sender, "segment_ids": [sid]}))

    stopped = camp.stop()
    t = stopped["campaign"]
    assert t["id"] == camp.campaign_id and t["name"] == "some name" and t["status"] == "stopped", t
    assert camp.get()["campaign"]["status"] == "stopped"
    sdk_refused(lambda: camp.start())
    sdk_refused(lambda: camp.update({"message_template": {"text": "x"}, "sender_id": sender, "segment_ids": [sid]}))
    camp.delete()

    # A naive scheduled_for (datetime.now().isoformat() in the SDK docs) is UTC.
    naive = client.campaign(data={"message_template": {"text": "x"}, "user_ids": [sender], "sender_id": sender})
    naive.create()
    when = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0) + timedelta(hours=3)
    n = naive.start(scheduled_for=when)["campaign"]
    assert n["status"] == "scheduled" and parse_time(n["scheduled_for"]) == when.replace(tzinfo=timezone.utc), n["scheduled_for"]
    # A draft may be stopped too.
    draft = client.campaign(data={"message_template": {"text": "x"}, "user_ids": [sender], "sender_id": sender})
    draft.create()
    assert draft.stop()["campaign"]["status"] == "stopped"
    sdk_refused(lambda: draft.start())
    for c in (naive, draft):
        c.delete()
    client.delete_segment(segment_id=sid)


def test_t6_and_e7_query_campaigns(client, sender):
    sid = client.create_segment(segment_type=SegmentType.USER)["segment"]["id"]
    client.add_segment_targets(segment_id=sid, target_ids=[sender])
    c = client.create_campaign(data={"message_template": {"text": "{Hello}"}, "segment_ids": [sid], "sender_id": sender, "name": "some name"})
    cid = c["campaign"]["id"]
    q = client.query_campaigns(filter_conditions={"id": {"$eq": cid}}, sort=[{"field": "created_at", "direction": -1}], options={"limit": 10})
    assert len(q["campaigns"]) == 1 and q["campaigns"][0]["id"] == cid, q
    assert_campaign_shape(q["campaigns"][0])

    # Several: default order created_at desc; filters; paging with next.
    tag = uid("qc")
    sid2 = client.create_segment(SegmentType.USER)["segment"]["id"]
    names = [f"{tag}-{i}" for i in range(4)]
    ids = []
    for i, name in enumerate(names):
        segs = [sid, sid2] if i == 1 else [sid2] if i == 2 else [sid]
        data = {"message_template": {"text": "x"}, "sender_id": sender, "name": name}
        data.update({"user_ids": [sender]} if i == 3 else {"segment_ids": segs})
        ids.append(client.create_campaign(data=data)["campaign"]["id"])
    mine = {"name": {"$in": names}}
    assert [x["id"] for x in client.query_campaigns(mine)["campaigns"]] == ids[::-1]
    assert [x["id"] for x in client.query_campaigns(mine, [{"field": "created_at", "direction": 1}])["campaigns"]] == ids
    paged, nxt = [], None
    for _ in range(8):
        page = client.query_campaigns(mine, options={"limit": 1, **({"next": nxt} if nxt else {})})
        paged += [x["id"] for x in page["campaigns"]]
        nxt = page.get("next")
        if not nxt:
            break
    assert paged == ids[::-1], paged

    def found(flt):
        return {x["id"] for x in client.query_campaigns({**mine, **flt})["campaigns"]}

    assert found({"segments": {"$in": [sid2]}}) == {ids[1], ids[2]}
    assert found({"segments": {"$contains": sid}}) == {ids[0], ids[1]}
    assert found({"segments": {"$eq": sid2}}) == {ids[1], ids[2]}
    assert found({"segments": {"$in": [sid, sid2]}}) == set(ids[:3])
    assert found({"sender_id": sender}) == set(ids)
    assert found({"name": names[2]}) == {ids[2]}
    assert found({"id": {"$in": [ids[0], ids[3], "nope"]}}) == {ids[0], ids[3]}
    assert found({"created_at": {"$gte": "2020-01-01T00:00:00Z"}}) == set(ids)
    assert found({"updated_at": {"$lt": "2020-01-01T00:00:00Z"}}) == set()

    now = datetime.now(timezone.utc)
    client.start_campaign(ids[0], scheduled_for=now + timedelta(hours=1))
    client.start_campaign(ids[2], scheduled_for=now + timedelta(hours=1))
    client.stop_campaign(ids[2])
    assert found({"status": {"$in": ["scheduled", "in_progress"]}}) == {ids[0]}
    assert found({"status": "stopped"}) == {ids[2]}
    assert found({"status": {"$eq": "draft"}}) == {ids[1], ids[3]}
    page = client.query_campaigns({**mine, "status": {"$in": ["draft", "stopped"]}}, options={"limit": 2})
    assert [x["id"] for x in page["campaigns"]] == [ids[3], ids[2]] and page.get("next"), page
    rest = client.query_campaigns({**mine, "status": {"$in": ["draft", "stopped"]}}, options={"limit": 2, "next": page["next"]})
    assert [x["id"] for x in rest["campaigns"]] == [ids[1]] and not rest.get("next"), rest

    sdk_refused(lambda: client.query_campaigns({"bogus": 1}))
    sdk_refused(lambda: client.query_campaigns(mine, options={"limit": 101}))
    sdk_refused(lambda: client.query_campaigns(mine, options={"prev": "x"}))

    # Deleted ones are gone from the query.
    client.delete_campaign(campaign_id=ids[1])
    assert found({}) == {ids[0], ids[2], ids[3]}
    for x in (cid, ids[0], ids[2], ids[3]):
        client.delete_campaign(campaign_id=x)
    client.delete_segment(segment_id=sid)
    client.delete_segment(segment_id=sid2)


def test_e4_user_ids_campaign_pages_its_users(server, client, sender):
    users = [uid("pu") for _ in range(3)]
    client.upsert_users([{"id": u, "name": u.upper()} for u in users])
    cid = client.create_campaign(data={"sender_id": sender, "user_ids": users, "message_template": {"text": "x"}})["campaign"]["id"]
    full = client.get_campaign(cid)
    assert [u["id"] for u in full["campaign"]["users"]] == users, full["campaign"]["users"]
    assert full["campaign"]["users"][0]["name"] == users[0].upper()
    assert not full["users"].get("next"), full["users"]
    first = api(server, client, "GET", f"/campaigns/{cid}", params={"limit": 2})
    assert first.status_code == 200, first.text
    page1 = first.json()
    assert [u["id"] for u in page1["campaign"]["users"]] == users[:2], page1["campaign"]["users"]
    assert page1["users"]["next"], page1["users"]
    second = api(server, client, "GET", f"/campaigns/{cid}", params={"limit": 2, "next": page1["users"]["next"]})
    assert second.status_code == 200, second.text
    page2 = second.json()
    assert [u["id"] for u in page2["campaign"]["users"]] == users[2:] and not page2["users"].get("next"), page2
    refused(api(server, client, "GET", f"/campaigns/{cid}", params={"limit": 1001}), 400)
    refused(api(server, client, "GET", f"/campaigns/{cid}", params={"prev": page1["users"]["next"]}), 400)
    client.delete_campaign(cid)


def test_e8_stop_without_a_body_and_delete_with_an_empty_one(server, client, sender):
    cid = client.create_campaign(data={"sender_id": sender, "user_ids": [sender], "message_template": {"text": "x"}})["campaign"]["id"]
    client.start_campaign(cid, scheduled_for=datetime.now(timezone.utc) + timedelta(hours=1))
    # As the JS SDK sends it: no body, no Content-Type.
    r = requests.post(
        f"{server.url}/campaigns/{cid}/stop",
        params={"api_key": server.api_key},
        headers={"Authorization": client.auth_token, "stream-auth-type": "jwt"},
        timeout=10,
    )
    assert r.status_code in (200, 201), r.text
    assert r.json()["campaign"]["status"] == "stopped" and r.json()["campaign"]["id"] == cid, r.json()
    d = api(server, client, "DELETE", f"/campaigns/{cid}", {})
    assert d.status_code == 200, d.text
    refused(api(server, client, "GET", f"/campaigns/{cid}"), 404)


def test_stop_reads_the_body_the_sdk_sends(server, client, sender):
    """The Python SDK posts `{}` to stop through a pooled keep-alive connection, the body in its
    own write after the headers (http.client sends a str body so). The server must read that
    body before it answers: a server that answers first closes the connection behind the
    client's back now and then, and the SDK's next call fails with RemoteDisconnected."""
    cid = client.create_campaign(data={"sender_id": sender, "user_ids": [sender], "message_template": {"text": "x"}})["campaign"]["id"]
    host, port = server.url.removeprefix("http://").split(":")
    head = (
        f"POST /campaigns/{cid}/stop?api_key={server.api_key} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: {client.auth_token}\r\nstream-auth-type: jwt\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
        early, _, _ = select.select([sock], [], [], 0.5)
        assert not early, f"the stop was answered before its body came: {sock.recv(300)!r}"
        sock.sendall(b"{}")
        reader = sock.makefile("rb")
        status = reader.readline()
        assert status.startswith(b"HTTP/1.1 200"), status
        headers = {}
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = json.loads(reader.read(int(headers["content-length"])))
        assert body["campaign"]["status"] == "stopped", body
        assert headers.get("connection", "").lower() != "close", headers
        # The same connection takes the next request.
        sock.sendall(
            f"GET /campaigns/{cid}?api_key={server.api_key} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: {client.auth_token}\r\nstream-auth-type: jwt\r\n\r\n".encode()
        )
        assert reader.readline().startswith(b"HTTP/1.1 200")
    client.delete_campaign(cid)


# Campaigns: refusals ---------------------------------------------------------------------------


@pytest.fixture
def own_server():
    """A private chat-local of the test's own (its refusals would use up much of the shared
    server's budget of campaign creations)."""
    data_dir = tempfile.mkdtemp(prefix="chat-local-campaign-refusals-")
    srv = LocalServer(data_dir, "refkey" + uuid.uuid4().hex[:6], "refsecret-" + uuid.uuid4().hex)
    srv.start()
    yield srv
    srv.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def test_campaign_refusals(own_server):
    server, client = own_server, own_server.client()
    sender = uid("sender")
    client.upsert_user({"id": sender})
    user_seg = client.create_segment(SegmentType.USER)["segment"]["id"]
    chan_seg = client.create_segment(SegmentType.CHANNEL)["segment"]["id"]
    tag = uid("bad")
    base = {"sender_id": sender, "message_template": {"text": "hi"}, "name": tag}
    cases = [
        ({"message_template": {"text": "hi"}, "name": tag}, "sender_id"),
        ({"sender_id": sender, "name": tag}, "message_template"),
        ({"sender_id": sender, "message_template": {}, "name": tag}, "text"),
        ({**base, "sender_id": uid("nobody")}, "does not exist"),
        ({**base, "segment_ids": [user_seg], "user_ids": [sender]}, "not both"),
        ({**base, "segment_ids": [uid("noseg")]}, "does not exist"),
        ({**base, "segment_ids": [user_seg, chan_seg]}, "segments"),
        ({**base, "segment_ids": [user_seg] * 26}, "25"),
        ({**base, "user_ids": [sender] * 10001}, "10000"),
        ({**base, "user_ids": [sender], "create_channels": True}, "channel_template"),
        ({**base, "user_ids": [sender], "create_channels": True, "channel_template": {"id": "x"}}, "type"),
        ({**base, "user_ids": [sender], "sender_mode": "include"}, "not supported yet"),
        ({**base, "user_ids": [sender], "sender_mode": "bogus"}, "sender_mode"),
        ({**base, "user_ids": [sender], "sender_visibility": "hidden"}, "not supported yet"),
        ({**base, "user_ids": [sender], "sender_visibility": "archived"}, "sender_visibility"),
        (
            {**base, "user_ids": [sender], "channel_template": {"type": "messaging", "members_template": [{"user_id": sender}]}},
            "members_template",
        ),
        ({**base, "message_template": {"text": "hi", "poll_id": "p1"}}, "poll"),
        ({**base, "message_template": {"text": "hi", "custom": {"blob": "y" * 25000}}}, "message_template"),
        ({**base, "message_template": {"text": "z" * 25000}}, "message_template"),
        ({**base, "message_template": {"text": "hi", "attachments": [{"type": "file"}] * 31}}, "attachments"),
        ({**base, "name": "n" * 129}, "name"),
        ({**base, "id": "i" * 256}, "id"),
        ({**base, "create_channels": "yes"}, ""),
        ({**base, "message_template": {"text": "   "}}, "text"),
        ({**base, "message_template": {"text": "z" * 5001}}, "5000 characters"),
        ({**base, "user_ids": [sender], "channel_template": {"type": "nosuchtype"}}, "does not exist"),
    ]
    for body, says in cases:
        got = refused(api(server, client, "POST", "/campaigns", body), 400)
        assert says in got["message"], (says, got["message"])
    assert client.query_campaigns({"name": tag})["campaigns"] == []
    for path in ("/campaigns/query", "/segments/query"):
        got = refused(api(server, client, "POST", path, {"filter": {}, "sort": [{"field": "color", "direction": 1}]}), 400)
        assert "cannot sort by" in got["message"], got
    # The SDK's own create: null id, missing sender.
    sdk_refused(lambda: client.campaign(data={"message_template": {"text": "x"}}).create())

    # An update is validated the same way, and leaves the campaign as it was.
    cid = client.create_campaign(data={**base, "user_ids": [sender]})["campaign"]["id"]
    # (What an update leaves out is kept, so sender_id and message_template may be left out.)
    for body, _ in cases[2:11]:
        refused(api(server, client, "PUT", f"/campaigns/{cid}", body), 400)
    kept = get_campaign(client, cid)
    assert kept["user_ids"] == [sender] and kept["message_template"] == {"text": "hi"} and kept["status"] == "draft", kept

    # Start: stop_at before the start or in the past; a bad time.
    now = datetime.now(timezone.utc)
    start = f"/campaigns/{cid}/start"
    for body in (
        {"stop_at": iso(now - timedelta(minutes=1))},
        {"scheduled_for": iso(now + timedelta(hours=2)), "stop_at": iso(now + timedelta(hours=1))},
        {"scheduled_for": iso(now + timedelta(hours=2)), "stop_at": iso(now + timedelta(hours=2))},
        {"scheduled_for": "tomorrow"},
        {"stop_at": "later"},
    ):
        got = refused(api(server, client, "POST", start, body), 400)
        assert ("stop_at" in got["message"]) or ("scheduled_for" in got["message"]), got
    assert get_campaign(client, cid)["status"] == "draft"

    # Unknown campaigns.
    missing = uid("nocamp")
    for method, path, body in [
        ("GET", f"/campaigns/{missing}", None),
        ("PUT", f"/campaigns/{missing}", {"sender_id": sender, "message_template": {"text": "x"}}),
        ("DELETE", f"/campaigns/{missing}", None),
        ("POST", f"/campaigns/{missing}/start", {}),
        ("POST", f"/campaigns/{missing}/stop", {}),
    ]:
        refused(api(server, client, method, path, body), 404)
    refused(api(server, client, "POST", "/campaigns/query", {"limit": 101}), 400)
    refused(api(server, client, "POST", "/campaigns/query", {"filter": {"text": "x"}}), 400)
    client.delete_campaign(cid)
    client.delete_segment(user_seg)
    client.delete_segment(chan_seg)


# Delivery --------------------------------------------------------------------------------------


def test_e3_and_e5_delivery_templates_channels_and_membership(client, sender):
    tag = uid("dl")
    ann, bob, cat, dan = (f"{n}-{tag}" for n in ("ann", "bob", "cat", "dan"))
    client.upsert_users(
        [
            {"id": ann, "name": "Ann", "city": "Oslo"},
            {"id": bob, "name": "Bob", "city": "Rome"},
            {"id": cat, "name": "Cat"},
            {"id": dan, "name": "Dan"},
        ]
    )
    # E3: create channels from a templated id; members sender + receiver + template members.
    camp = client.campaign(
        data={
            "sender_id": sender,
            "user_ids": [ann, bob],
            "name": "hello",
            "create_channels": True,
            "channel_template": {"type": "messaging", "id": "{{receiver.id}}-{{ sender.id }}", "members": [dan], "custom": {"topic": "promo"}},
            "message_template": {
                "text": "Hi {{ receiver.name }} from {{ receiver.city }}, I'm {{sender.name}} in {{ channel.id }}.{{ receiver.nope }}",
                "custom": {"promo": "code-{{ receiver.id }}", "fixed": 7},
            },
        }
    )
    camp.create()
    started = camp.start()["campaign"]
    assert started["status"] in ("in_progress", "completed") and started["stats"]["stats_started_at"], started
    done = wait_campaign(client, camp.campaign_id)
    st = done["stats"]
    assert (st["stats_messages_sent"], st["stats_channels_created"], st["stats_users_sent"], st["progress"], st["stats_users_read"]) == (
        2, 2, 2, 1, 0,
    ), st
    assert parse_time(st["stats_completed_at"]) >= parse_time(st["stats_started_at"]), st

    for rid, name, city in ((ann, "Ann", "Oslo"), (bob, "Bob", "Rome")):
        ch_id = f"{rid}-{sender}"
        (state,) = client.query_channels({"cid": f"messaging:{ch_id}"}, messages_limit=10)["channels"]
        assert sorted(m["user_id"] for m in state["members"]) == sorted([sender, rid, dan]), state["members"]
        assert state["channel"]["topic"] == "promo", state["channel"]
        assert state["channel"]["created_by"]["id"] == sender, state["channel"]["created_by"]
        (msg,) = state["messages"]
        assert msg["text"] == f"Hi {name} from {city}, I'm Sally Sender in {ch_id}.", msg["text"]
        assert msg["type"] == "regular" and msg["user"]["id"] == sender, msg
        assert msg["campaign_id"] == camp.campaign_id, msg
        assert msg["promo"] == f"code-{rid}" and msg["fixed"] == 7, msg

    # E5: without create_channels, a receiver with no channel is skipped; an existing distinct
    # channel of sender + receiver is used (no channel_template: messaging, distinct).
    existing = client.channel("messaging", None, {"members": [sender, cat]})
    existing.create(sender)
    skip = client.create_campaign(data={"sender_id": sender, "user_ids": [cat, dan], "message_template": {"text": "Only {{ receiver.name }}"}})
    client.start_campaign(skip["campaign"]["id"])
    done = wait_campaign(client, skip["campaign"]["id"])
    assert done["stats"]["stats_messages_sent"] == 1 and done["stats"]["stats_channels_created"] == 0, done["stats"]
    assert done["stats"]["stats_users_sent"] == 1 and done["stats"]["progress"] == 1, done["stats"]
    texts = [m["text"] for m in existing.query(messages={"limit": 10})["messages"]]
    assert texts == ["Only Cat"], texts
    dan_channels = channels_where(client, {"members": {"$in": [dan]}})
    assert {s["channel"]["id"] for s in dan_channels} == {f"{ann}-{sender}", f"{bob}-{sender}"}, "a channel was created for dan"
    assert all(m.get("campaign_id") != skip["campaign"]["id"] for s in dan_channels for m in s["messages"])

    # sender_mode "exclude": new channels without the sender, the message still from the sender.
    ex = client.create_campaign(
        data={
            "sender_id": sender,
            "user_ids": [cat, dan],
            "sender_mode": "exclude",
            "create_channels": True,
            "channel_template": {"type": "messaging", "id": "ex-{{ receiver.id }}"},
            "message_template": {"text": "psst"},
        }
    )["campaign"]
    assert ex["sender_mode"] == "exclude"
    client.start_campaign(ex["id"])
    assert wait_campaign(client, ex["id"])["stats"]["stats_messages_sent"] == 2
    for rid in (cat, dan):
        (state,) = client.query_channels({"cid": f"messaging:ex-{rid}"}, messages_limit=10)["channels"]
        assert [m["user_id"] for m in state["members"]] == [rid], state["members"]
        assert [(m["text"], m["user"]["id"], m["campaign_id"]) for m in state["messages"]] == [("psst", sender, ex["id"])]

    # A distinct channel created by the campaign (no template id): messaging, sender + receiver.
    dist = client.create_campaign(
        data={
            "sender_id": sender,
            "user_ids": [ann],
            "create_channels": True,
            "channel_template": {"type": "messaging"},
            "message_template": {"text": "distinct {{ receiver.name }}"},
        }
    )["campaign"]
    client.start_campaign(dist["id"])
    assert wait_campaign(client, dist["id"])["stats"]["stats_channels_created"] == 1
    pair = [s for s in channels_where(client, {"members": {"$eq": sorted([sender, ann])}}) if s["channel"]["id"] != f"{ann}-{sender}"]
    assert len(pair) == 1, [s["channel"]["cid"] for s in pair]
    assert [(m["text"], m["campaign_id"]) for m in pair[0]["messages"]] == [("distinct Ann", dist["id"])]
    assert sorted(m["user_id"] for m in pair[0]["members"]) == sorted([sender, ann])
    # The same campaign again reuses that channel (it is distinct) - and a second campaign does not
    # create a second channel.
    again = client.create_campaign(
        data={
            "sender_id": sender,
            "user_ids": [ann],
            "create_channels": True,
            "channel_template": {"type": "messaging"},
            "message_template": {"text": "distinct again"},
        }
    )["campaign"]
    client.start_campaign(again["id"])
    assert wait_campaign(client, again["id"])["stats"]["stats_channels_created"] == 0
    (state,) = client.query_channels({"cid": pair[0]["channel"]["cid"]}, messages_limit=10)["channels"]
    assert [m["text"] for m in state["messages"]] == ["distinct Ann", "distinct again"]


def test_receivers_in_several_segments_get_one_message(client, sender):
    tag = uid("ov")
    users = make_users(client, 5, tag)
    s1 = client.create_segment(SegmentType.USER)["segment"]["id"]
    s2 = client.create_segment(SegmentType.USER)["segment"]["id"]
    client.add_segment_targets(s1, users[:4])
    client.add_segment_targets(s2, users[2:] + [uid("not-a-user")])
    camp = client.create_campaign(
        data={
            "sender_id": sender,
            "segment_ids": [s1, s2],
            "create_channels": True,
            "channel_template": {"type": "messaging", "id": "{{ receiver.id }}-ov", "custom": {"camp": tag}},
            "message_template": {"text": "once"},
        }
    )["campaign"]
    client.start_campaign(camp["id"])
    done = wait_campaign(client, camp["id"])
    assert (done["stats"]["stats_messages_sent"], done["stats"]["stats_users_sent"]) == (5, 5), done["stats"]
    per = campaign_messages(channels_where(client, {"camp": tag}), camp["id"])
    assert {cid: len(m) for cid, m in per.items()} == {f"messaging:{u}-ov": 1 for u in users}, per


def test_a_thousand_receivers_with_new_channels(crowd):
    client, sender = crowd.client, crowd.sender
    tag = uid("k")
    receivers = crowd.users[:1000]
    camp = client.campaign(
        data={
            "sender_id": sender,
            "user_ids": receivers,
            "create_channels": True,
            "channel_template": {"type": "messaging", "id": "{{ receiver.id }}-" + tag, "custom": {"camp": tag}},
            "message_template": {"text": "Hello {{ receiver.name }}, {{ sender.name }} here", "custom": {"for_user": "{{ receiver.id }}"}},
        }
    )
    camp.create()
    t0 = datetime.now(timezone.utc)
    camp.start()
    done = wait_campaign(client, camp.campaign_id)
    st = done["stats"]
    assert (st["stats_messages_sent"], st["stats_channels_created"], st["stats_users_sent"], st["progress"]) == (1000, 1000, 1000, 1), st
    started, completed = parse_time(st["stats_started_at"]), parse_time(st["stats_completed_at"])
    assert t0 - timedelta(seconds=2) <= started <= completed <= datetime.now(timezone.utc) + timedelta(seconds=2), st

    states = channels_where(client, {"camp": tag}, [f"messaging:{u}-{tag}" for u in receivers])
    assert len(states) == 1000, len(states)
    for state in states:
        rid = state["channel"]["id"][: -len(tag) - 1]
        assert rid in receivers, state["channel"]["id"]
        assert sorted(m["user_id"] for m in state["members"]) == sorted([sender, rid]), state["members"]
        (msg,) = state["messages"]
        assert msg["text"] == f"Hello Name of {rid}, Sally Sender here", msg["text"]
        assert msg["campaign_id"] == camp.campaign_id and msg["type"] == "regular" and msg["for_user"] == rid, msg
        assert msg["user"]["id"] == sender
    assert {s["channel"]["id"][: -len(tag) - 1] for s in states} == set(receivers)


def crowd_campaign(crowd, prefix):
    """A draft to the whole crowd, a channel created for each in the campaign's name."""
    client, tag = crowd.client, uid(prefix)
    cids = [f"messaging:{u}-{tag}" for u in crowd.users]
    camp = client.campaign(
        data={
            "sender_id": crowd.sender,
            "user_ids": crowd.users,
            "create_channels": True,
            "channel_template": {"type": "messaging", "id": "{{ receiver.id }}-" + tag, "custom": {"camp": tag}},
            "message_template": {"text": "hello crowd"},
        }
    )
    camp.create()
    return client, tag, cids, camp


# chat-local runs 4 campaign jobs at once, each sending 8 at a time and reading the campaign
# again between waves: a stop lets at most these sends under way finish.
IN_FLIGHT = 4 * 8


def assert_stopped_promptly(client, campaign_id, tag, cids, stopped_at):
    """After a stop at `stopped_at`: only the sends under way then finish, the stats settle and
    count exactly the messages in the channels, and nothing more happens."""
    deadline = time.monotonic() + 10
    last = get_campaign(client, campaign_id)
    while True:
        time.sleep(0.5)
        now = get_campaign(client, campaign_id)
        if now["stats"] == last["stats"]:
            break
        assert time.monotonic() < deadline, ("stats still moving", now["stats"])
        last = now
    assert now["status"] == "stopped", now
    messages = [m for ms in campaign_messages(channels_where(client, {"camp": tag}, cids), campaign_id).values() for m in ms]
    after = [m for m in messages if parse_time(m["created_at"]) > stopped_at]
    assert len(after) <= IN_FLIGHT, f"{len(after)} messages sent after the stop"
    assert len(messages) == now["stats"]["stats_messages_sent"], (len(messages), now["stats"])
    assert now["stats"]["progress"] < 1 and len(messages) < len(cids), now["stats"]
    time.sleep(1)
    assert get_campaign(client, campaign_id)["stats"] == now["stats"]
    assert sent_count(client, tag, campaign_id, cids) == len(messages)


def test_stop_mid_way(crowd):
    client, tag, cids, camp = crowd_campaign(crowd, "stop")
    camp.start()
    # Stop once sending is under way.
    deadline = time.monotonic() + SETTLE
    while (c := get_campaign(client, camp.campaign_id))["stats"]["stats_messages_sent"] == 0:
        assert c["status"] == "in_progress" and time.monotonic() < deadline, c
        time.sleep(0.02)
    stopped = camp.stop()["campaign"]
    assert stopped["status"] == "stopped", stopped
    assert 0 < stopped["stats"]["stats_messages_sent"] < len(crowd.users), stopped["stats"]
    assert_stopped_promptly(client, camp.campaign_id, tag, cids, parse_time(stopped["updated_at"]))
    sdk_refused(lambda: camp.start())


def test_scheduled_start(client, sender):
    tag = uid("sch")
    users = make_users(client, 3, tag)
    cids = [f"messaging:{u}-s" for u in users]
    camp = client.campaign(
        data={
            "sender_id": sender,
            "user_ids": users,
            "create_channels": True,
            "channel_template": {"type": "messaging", "id": "{{ receiver.id }}-s", "custom": {"camp": tag}},
            "message_template": {"text": "on time"},
        }
    )
    camp.create()
    when = datetime.now(timezone.utc) + timedelta(seconds=2)
    s = camp.start(scheduled_for=when)["campaign"]
    assert s["status"] == "scheduled" and abs(parse_time(s["scheduled_for"]) - when) < timedelta(milliseconds=1), s
    assert s["stats"]["stats_started_at"] is None
    seen = []
    deadline = time.monotonic() + 2 + SETTLE
    while time.monotonic() < deadline:
        c = get_campaign(client, camp.campaign_id)
        now = datetime.now(timezone.utc)
        seen.append((now, c["status"]))
        if c["status"] == "scheduled":
            assert now < when + timedelta(seconds=4), f"still scheduled 4 s after {when}"
            assert sent_count(client, tag, camp.campaign_id, cids) == 0
        if c["status"] == "completed":
            break
        time.sleep(0.1)
    statuses = [x for _, x in seen]
    assert statuses[-1] == "completed", statuses
    assert set(statuses) <= {"scheduled", "in_progress", "completed"}, statuses
    left = next(t for t, x in seen if x != "scheduled")
    assert left >= when - timedelta(milliseconds=200), (left, when)
    st = c["stats"]
    assert parse_time(st["stats_started_at"]) >= when - timedelta(milliseconds=50), (st, when)
    assert st["stats_messages_sent"] == 3 and sent_count(client, tag, camp.campaign_id, cids) == 3, st


def test_stop_at_stops_a_running_campaign(crowd):
    client, tag, cids, camp = crowd_campaign(crowd, "sat")
    stop_at = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    s = camp.start(stop_at=stop_at)["campaign"]
    assert s["status"] in ("in_progress",), s
    assert abs(parse_time(s["stop_at"]) - stop_at) < timedelta(milliseconds=1), s["stop_at"]
    done = wait_campaign(client, camp.campaign_id, ("stopped", "completed"), timeout=SETTLE)
    seen_at = datetime.now(timezone.utc)
    assert done["status"] == "stopped", f"completed before stop_at ({done['stats']}): make the crowd bigger"
    assert seen_at >= stop_at, (seen_at, stop_at)
    assert seen_at <= stop_at + timedelta(seconds=4), f"stopped only at {seen_at}, stop_at {stop_at}"
    assert 0 < done["stats"]["stats_messages_sent"] < len(crowd.users), done["stats"]
    assert_stopped_promptly(client, camp.campaign_id, tag, cids, parse_time(done["updated_at"]))


def test_skip_webhook_keeps_message_new_from_webhooks():
    hook = JsonEndpoint(lambda doc: (200, {}))
    try:
        with private_app("camphook") as client:
            client.update_app_settings(webhook_url=hook.url)
            time.sleep(1.1)  # the hook settings cache
            tag = uid("wh")
            s, a, b = f"s-{tag}", f"a-{tag}", f"b-{tag}"
            client.upsert_users([{"id": s, "name": "S"}, {"id": a}, {"id": b}])

            def run(name, skip):
                c = client.create_campaign(
                    data={
                        "sender_id": s,
                        "user_ids": [a, b],
                        "skip_webhook": skip,
                        "create_channels": True,
                        "channel_template": {"type": "messaging", "id": "{{ receiver.id }}-" + name},
                        "message_template": {"text": name},
                    }
                )["campaign"]
                assert c["skip_webhook"] is skip
                client.start_campaign(c["id"])
                wait_campaign(client, c["id"])
                return c["id"]

            quiet, loud = run("quiet", True), run("loud", False)

            def events():
                return [json.loads(body) for body, _ in list(hook.calls)]

            def of(kind, campaign_id):
                out = []
                for e in events():
                    if e.get("type") != kind:
                        continue
                    if kind.startswith("campaign."):
                        if e.get("campaign", {}).get("id") == campaign_id:
                            out.append(e)
                    elif (e.get("message") or {}).get("campaign_id") == campaign_id:
                        out.append(e)
                return out

            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if of("campaign.completed", quiet) and of("campaign.completed", loud) and len(of("message.new", loud)) == 2:
                    break
                time.sleep(0.1)
            time.sleep(1)  # anything late for the quiet campaign
            types = sorted({e.get("type") for e in events()})
            assert len(of("message.new", loud)) == 2, types
            assert {e["message"]["text"] for e in of("message.new", loud)} == {"loud"}
            assert of("message.new", quiet) == [], of("message.new", quiet)
            quiet_cids = {f"messaging:{a}-quiet", f"messaging:{b}-quiet"}
            assert not [e for e in events() if e.get("type") == "message.new" and e.get("cid") in quiet_cids]
            # Other events of the quiet campaign still reach the hook.
            created = {e.get("cid") or (e.get("channel") or {}).get("cid") for e in events() if e.get("type") == "channel.created"}
            assert quiet_cids <= created, (quiet_cids, created)
            for cid in (quiet, loud):
                (started,) = of("campaign.started", cid)
                (completed,) = of("campaign.completed", cid)
                assert started["campaign"]["id"] == cid and started.get("created_at"), started
                assert completed["campaign"]["status"] == "completed", completed["campaign"]
                assert completed["campaign"]["stats"]["stats_messages_sent"] == 2, completed["campaign"]["stats"]
    finally:
        hook.close()


def test_skip_push_is_honoured(client, sender, google, provider):
    tag = uid("sp")
    quiet_user, loud_user = f"q-{tag}", f"l-{tag}"
    client.upsert_users([{"id": quiet_user}, {"id": loud_user}])
    for u in (quiet_user, loud_user, sender):
        client.add_device(f"tok-{u}", "firebase", u, push_provider_name=provider)

    def run(user, skip):
        c = client.create_campaign(
            data={
                "sender_id": sender,
                "user_ids": [user],
                "skip_push": skip,
                "create_channels": True,
                "channel_template": {"type": "messaging", "id": "{{ receiver.id }}-push"},
                "message_template": {"text": "push? " + str(not skip)},
            }
        )["campaign"]
        assert c["skip_push"] is skip
        client.start_campaign(c["id"])
        return wait_campaign(client, c["id"])

    quiet = run(quiet_user, True)
    loud = run(loud_user, False)
    assert quiet["stats"]["stats_messages_sent"] == 1 and loud["stats"]["stats_messages_sent"] == 1
    deadline = time.monotonic() + 10
    while not google.sent_to(f"tok-{loud_user}") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)
    (push,) = google.sent_to(f"tok-{loud_user}")
    assert push["data"]["cid"] == f"messaging:{loud_user}-push" and push["data"]["receiver_id"] == loud_user, push["data"]
    assert google.sent_to(f"tok-{quiet_user}") == [], google.sent_to(f"tok-{quiet_user}")
    assert google.sent_to(f"tok-{sender}") == []


def test_no_duplicate_after_sigkill_and_restart(restartable):
    srv = restartable.start()
    client = srv.client()
    n = 2000
    users = make_users(client, n, "kill")
    client.upsert_user({"id": "kill-sender", "name": "K"})
    camp = client.create_campaign(
        data={
            "sender_id": "kill-sender",
            "user_ids": users,
            "create_channels": True,
            "channel_template": {"type": "messaging", "id": "{{ receiver.id }}-k", "custom": {"camp": "kill"}},
            "message_template": {"text": "once for {{ receiver.id }}"},
        }
    )["campaign"]
    client.start_campaign(camp["id"])
    deadline = time.monotonic() + SETTLE
    while True:
        c = get_campaign(client, camp["id"])
        if c["stats"]["stats_messages_sent"] > 0 or c["status"] != "in_progress":
            break
        assert time.monotonic() < deadline, c
        time.sleep(0.02)
    assert c["status"] == "in_progress" and c["stats"]["stats_messages_sent"] < n, c["stats"]

    srv.proc.kill()  # SIGKILL
    srv.proc.wait(timeout=10)
    srv.proc = None
    srv.log.close()
    srv.start()
    client = srv.client()
    after = get_campaign(client, camp["id"])
    assert after["status"] in ("in_progress", "completed"), after["status"]
    done = wait_campaign(client, camp["id"])
    per = campaign_messages(channels_where(client, {"camp": "kill"}, [f"messaging:{u}-k" for u in users]), camp["id"])
    assert len(per) == n, len(per)
    dup = {cid: [m["id"] for m in msgs] for cid, msgs in per.items() if len(msgs) != 1}
    assert dup == {}, f"{len(dup)} channels without exactly one message: {list(dup.items())[:5]}"
    assert set(per) == {f"messaging:{u}-k" for u in users}
    for cid, (msg,) in per.items():
        assert msg["text"] == f"once for {cid[len('messaging:'):-2]}", msg["text"]
    # The stats count each receiver once, and every channel the campaign made.
    st = done["stats"]
    assert (st["stats_messages_sent"], st["stats_users_sent"], st["progress"]) == (n, n, 1), st
    assert st["stats_channels_created"] == n, st


# Server-side only ------------------------------------------------------------------------------


def test_server_side_only(server, client):
    tag = uid("perm")
    me, other, admin = f"me-{tag}", f"other-{tag}", f"admin-{tag}"
    client.upsert_users([{"id": me}, {"id": other}, {"id": admin, "role": "admin"}])
    seg = client.create_segment(SegmentType.USER, data={"name": f"seg-{tag}"})["segment"]["id"]
    client.add_segment_targets(seg, [me, other])
    camp = client.create_campaign(data={"sender_id": me, "name": f"camp-{tag}", "segment_ids": [seg], "message_template": {"text": "x"}})[
        "campaign"
    ]["id"]
    routes = [
        ("POST", "/segments", {"type": "user", "name": f"new-{tag}"}),
        ("GET", f"/segments/{seg}", None),
        ("PUT", f"/segments/{seg}", {"name": "hijacked"}),
        ("POST", "/segments/query", {"filter": {"id": seg}}),
        ("POST", f"/segments/{seg}/addtargets", {"target_ids": [admin]}),
        ("POST", f"/segments/{seg}/deletetargets", {"target_ids": [me]}),
        ("POST", f"/segments/{seg}/targets/query", {}),
        ("GET", f"/segments/{seg}/target/{other}", None),
        ("DELETE", f"/segments/{seg}", None),
        ("POST", "/campaigns", {"id": None, "sender_id": me, "name": f"new-{tag}", "user_ids": [other], "message_template": {"text": "x"}}),
        ("GET", f"/campaigns/{camp}", None),
        (
            "PUT",
            f"/campaigns/{camp}",
            {"sender_id": me, "name": "hijacked", "segment_ids": [], "user_ids": [other], "message_template": {"text": "x"}},
        ),
        ("POST", "/campaigns/query", {"filter": {"id": camp}}),
        ("POST", f"/campaigns/{camp}/start", {}),
        ("POST", f"/campaigns/{camp}/stop", {}),
        ("DELETE", f"/campaigns/{camp}", None),
        # Unknown ids are refused before anything is looked up.
        ("GET", f"/segments/none-{tag}", None),
        ("GET", f"/campaigns/none-{tag}", None),
    ]
    callers = {
        "user (the sender)": {"token": server.user_token(me)},
        "other user": {"token": server.user_token(other)},
        "admin user": {"token": server.user_token(admin)},
        "guest": {"token": guest_token(server)},
        "anonymous": {"auth_type": "anonymous"},
    }
    for who, caller in callers.items():
        for method, path, body in routes:
            kw = {"json": body} if body is not None else {}
            resp = server.request(method, path, **caller, **kw)
            assert resp.status_code == 403, (who, method, path, resp.status_code, resp.text)
            refused(resp, 403, 17)
    # Nothing changed.
    s = client.get_segment(seg)["segment"]
    assert s["name"] == f"seg-{tag}" and s["size"] == 2, s
    assert [t["target_id"] for t in client.query_segment_targets(seg)["targets"]] == sorted([me, other])
    c = get_campaign(client, camp)
    assert c["status"] == "draft" and c["name"] == f"camp-{tag}" and c["segment_ids"] == [seg], c
    assert client.query_segments({"name": f"new-{tag}"})["segments"] == []
    assert client.query_campaigns({"name": f"new-{tag}"})["campaigns"] == []

    # The server may, on each route.
    now = datetime.now(timezone.utc)
    ok_bodies = {f"/campaigns/{camp}/start": {"scheduled_for": iso(now + timedelta(hours=1))}}
    order = routes[:8] + routes[9:14] + [routes[14], routes[15], routes[8]]
    for method, path, body in order:
        body = ok_bodies.get(path, body)
        kw = {"json": body} if body is not None else {}
        resp = server.request(method, path, token=client.auth_token, **kw)
        assert resp.status_code in (200, 201), (method, path, resp.status_code, resp.text)
    for r in client.query_segments({"name": f"new-{tag}"})["segments"]:
        client.delete_segment(r["id"])
    for r in client.query_campaigns({"name": f"new-{tag}"})["campaigns"]:
        client.delete_campaign(r["id"])
