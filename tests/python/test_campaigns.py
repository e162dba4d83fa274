"""Segments and campaigns, black-box, through the official Python SDK (`client.segment(...)`,
`client.campaign(...)` and the client's segment/campaign calls) and raw HTTP where the SDK has no
call: the upstream SDK flows (campaign CRUD, scheduled start and stop, campaign query;
the segment flows are in test_segments.py); what is refused (validation, the
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

from campaign_support import *  # noqa: F401,F403 (helpers and fixtures)


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
    # A refused update (its sender does not exist) changes nothing.
    sdk_refused(lambda: camp.update({"sender_id": uid("nobody"), "name": "refused"}))
    kept = camp.get()["campaign"]
    assert (kept["sender_id"], kept["name"]) == (sender, "updated_name"), kept

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


def answered_after_its_body(server, client, method, path):
    """Sends the request's headers, then its `{}` body half a second later (as http.client does
    with a str body on a pooled keep-alive connection) and checks the server waited for the
    body, answered 200 and keeps the connection for a next request. A server that answers first
    closes the connection behind the client's back now and then, and the SDK's next call fails
    with RemoteDisconnected. Returns the answer."""
    host, port = server.url.removeprefix("http://").split(":")
    auth = f"Authorization: {client.auth_token}\r\nstream-auth-type: jwt\r\n"
    head = (
        f"{method} {path}?api_key={server.api_key} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}"
        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
        early, _, _ = select.select([sock], [], [], 0.5)
        assert not early, f"{method} {path} was answered before its body came: {sock.recv(300)!r}"
        sock.sendall(b"{}")
        reader = sock.makefile("rb")
        status = reader.readline()
        assert status.startswith(b"HTTP/1.1 200"), status
        headers = {}
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = json.loads(reader.read(int(headers["content-length"])))
        assert headers.get("connection", "").lower() != "close", headers
        # The same connection takes the next request.
        sock.sendall(f"GET /app?api_key={server.api_key} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n".encode())
        assert reader.readline().startswith(b"HTTP/1.1 200")
    return body


def test_routes_read_the_body_the_sdk_sends(server, client, sender):
    """The sync SDK posts `{}` to stop; the async SDK sends `{}` with every DELETE."""
    cid = client.create_campaign(data={"sender_id": sender, "user_ids": [sender], "message_template": {"text": "x"}})["campaign"]["id"]
    assert answered_after_its_body(server, client, "POST", f"/campaigns/{cid}/stop")["campaign"]["status"] == "stopped"
    answered_after_its_body(server, client, "DELETE", f"/campaigns/{cid}")
    gone = uid("gone")
    client.upsert_user({"id": gone})
    answered_after_its_body(server, client, "DELETE", f"/users/{gone}")


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
        ({**base, "user_ids": [f"{sender}-{i:05}-{'x' * 40}" for i in range(9000)]}, "put its user_ids in a segment"),
        ({**base, "message_template": {"text": "hi", "searchable": False}}, "not supported yet"),
        ({**base, "user_ids": [sender], "channel_template": {"type": "messaging", "custom": {"blob": "b" * 70000}}}, "channel_template"),
        ({**base, "user_ids": [sender], "create_channels": True}, "channel_template"),
        ({**base, "user_ids": [sender], "create_channels": True, "channel_template": {"id": "x"}}, "type"),
        ({**base, "user_ids": [sender], "sender_mode": "bogus"}, "sender_mode"),
        ({**base, "user_ids": [sender], "sender_mode": "exclude"}, "channel_template"),
        ({**base, "user_ids": [sender], "sender_mode": "exclude", "channel_template": {"type": "messaging"}}, "needs an id"),
        ({**base, "user_ids": [sender], "sender_visibility": "visible"}, "sender_visibility"),
        (
            {**base, "user_ids": [sender], "channel_template": {"type": "messaging", "members_template": [{"channel_role": "x"}]}},
            "user_id",
        ),
        (
            {
                **base,
                "user_ids": [sender],
                "channel_template": {"type": "messaging", "members": [sender], "members_template": [{"user_id": sender}]},
            },
            "not both",
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
    assert (done["stats"]["stats_users_targeted"], done["stats"]["stats_channels_existing"], done["stats"]["stats_errors"]) == (2, 1, 0)
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

    # sender_mode "include": the sender joins an existing channel they were not in;
    # sender_visibility: new channels hidden (or archived) for the sender; members_template:
    # members with their channel role and custom data, templated.
    outside = client.channel("messaging", f"in-{cat}", {"members": [cat]})
    outside.create(cat)
    inc = client.create_campaign(
        data={
            "sender_id": sender,
            "user_ids": [cat, dan],
            "sender_mode": "include",
            "sender_visibility": "hidden",
            "create_channels": True,
            "channel_template": {
                "type": "messaging",
                "id": "in-{{ receiver.id }}",
                "members_template": [
                    {"user_id": "{{ receiver.id }}", "channel_role": "channel_moderator", "custom": {"tier": "gold"}},
                    {"user_id": ann},
                ],
            },
            "message_template": {"text": "in"},
        }
    )["campaign"]
    assert (inc["sender_mode"], inc["sender_visibility"]) == ("include", "hidden"), inc
    client.start_campaign(inc["id"])
    done = wait_campaign(client, inc["id"])
    assert (done["stats"]["stats_messages_sent"], done["stats"]["stats_channels_created"]) == (2, 1), done["stats"]
    (joined,) = client.query_channels({"cid": f"messaging:in-{cat}"}, messages_limit=10)["channels"]
    assert sorted(m["user_id"] for m in joined["members"]) == sorted([sender, cat]), joined["members"]
    assert [m["text"] for m in joined["messages"] if m.get("campaign_id") == inc["id"]] == ["in"]
    made = client.query_channels({"cid": f"messaging:in-{dan}"}, messages_limit=10)["channels"][0]
    roles = {m["user_id"]: (m.get("channel_role"), m.get("tier")) for m in made["members"]}
    assert roles[dan] == ("channel_moderator", "gold") and set(roles) == {sender, dan, ann}, roles
    mine = client.query_channels({"cid": f"messaging:in-{dan}", "hidden": True}, user_id=sender)["channels"]
    assert [c["channel"]["cid"] for c in mine] == [f"messaging:in-{dan}"], "hidden for the sender"
    theirs = client.query_channels({"cid": f"messaging:in-{dan}"}, user_id=dan)["channels"]
    assert len(theirs) == 1, "shown to the receiver"
    eve = f"eve-{tag}"
    client.upsert_user({"id": eve, "name": "Eve"})
    arch = client.create_campaign(
        data={
            "sender_id": sender,
            "user_ids": [eve],
            "sender_visibility": "archived",
            "create_channels": True,
            "channel_template": {"type": "messaging", "id": "ar-{{ receiver.id }}"},
            "message_template": {"text": "archived"},
        }
    )["campaign"]
    client.start_campaign(arch["id"])
    assert wait_campaign(client, arch["id"])["stats"]["stats_channels_created"] == 1
    (archived,) = client.query_channels({"cid": f"messaging:ar-{eve}"}, user_id=sender)["channels"]
    assert archived["membership"].get("archived_at"), archived["membership"]

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
    assert (st["stats_users_targeted"], st["stats_channels_existing"], st["stats_errors"]) == (1000, 0, 0), st
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
