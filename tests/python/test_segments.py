"""Segments, black-box, through the official Python SDK (`client.segment(...)` and the client's
segment calls) and raw HTTP where the SDK has no call: the upstream SDK flows (segment CRUD,
targets with deterministic paging, segment query), user segments by filter and `all_users`,
channel segments by targets and `all_sender_channels`, and what is refused (validation, bounded
inputs) with Stream's error envelope and no leak. Permissions of every route are in
test_campaigns.py (`test_server_side_only`)."""

from campaign_support import *  # noqa: F401,F403 (helpers and fixtures)


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

    # A channel segment's filter is query channels' (its fields checked); all_users is for user
    # segments, all_sender_channels for channel segments.
    sdk_refused(lambda: client.create_segment(SegmentType.CHANNEL, data={"filter": {"members": {"$ne": "x"}}}))
    sdk_refused(lambda: client.create_segment(SegmentType.CHANNEL, data={"all_users": True}))
    sdk_refused(lambda: client.create_segment(SegmentType.USER, data={"all_sender_channels": True}))

    # A campaign on a channel segment posts into each target channel.
    a, b = uid("ca"), uid("cb")
    client.upsert_users([{"id": a, "name": "Ann"}, {"id": b, "name": "Ben"}])
    client.channel("messaging", f"{tag}-a", {"members": [a, sender]}).create(a)
    client.channel("messaging", f"{tag}-b", {"members": [b]}).create(b)
    seg.add_targets([f"messaging:{tag}-missing"])
    # A channel that bans the sender refuses its message: an error, the others still sent.
    banned = client.channel("messaging", f"{tag}-banned", {"members": [b]})
    banned.create(b)
    banned.ban_user(sender, banned_by_id=b)
    seg.add_targets([f"messaging:{tag}-banned"])
    camp = client.create_campaign(
        data={"sender_id": sender, "segment_ids": [s["id"]], "message_template": {"text": "in {{ channel.id }} to [{{ receiver.name }}]"}}
    )["campaign"]
    client.start_campaign(camp["id"])
    done = wait_campaign(client, camp["id"])
    assert done["stats"]["stats_messages_sent"] == 2 and done["stats"]["stats_channels_created"] == 0, done["stats"]
    st = done["stats"]
    assert (st["stats_channels_existing"], st["stats_errors"], st["stats_users_targeted"], st["progress"]) == (2, 1, 0, 1), st
    states = channels_where(client, {"cid": {"$in": cids + [f"messaging:{tag}-missing"]}})
    msgs = {st["channel"]["id"]: [(m["text"], m["user"]["id"], m["campaign_id"]) for m in st["messages"]] for st in states}
    assert msgs == {
        f"{tag}-a": [(f"in {tag}-a to []", sender, camp["id"])],
        f"{tag}-b": [(f"in {tag}-b to []", sender, camp["id"])],
    }, msgs
    seg.delete()

    # By filter: the channels a server-side query channels with it finds (custom data, members,
    # type), counted in `size`, and each sent to.
    client.channel("messaging", f"{tag}-f1", {"members": [a], "campaign_tag": tag}).create(a)
    client.channel("messaging", f"{tag}-f2", {"members": [b], "campaign_tag": tag}).create(b)
    client.channel("messaging", f"{tag}-f3", {"members": [a], "campaign_tag": "other"}).create(a)
    by_filter = client.create_segment(SegmentType.CHANNEL, data={"filter": {"campaign_tag": tag, "type": "messaging"}})["segment"]
    assert by_filter["size"] == 2, by_filter
    only_a = client.create_segment(SegmentType.CHANNEL, data={"filter": {"campaign_tag": tag, "members": {"$in": [a]}}})["segment"]
    assert only_a["size"] == 1, only_a
    client.segment_target_exists(by_filter["id"], f"messaging:{tag}-f2")
    sdk_refused(lambda: client.segment_target_exists(by_filter["id"], f"messaging:{tag}-f3"), 404)
    camp3 = client.create_campaign(data={"sender_id": sender, "segment_ids": [by_filter["id"]], "message_template": {"text": "filtered"}})[
        "campaign"
    ]
    client.start_campaign(camp3["id"])
    assert wait_campaign(client, camp3["id"])["stats"]["stats_messages_sent"] == 2
    filtered = [f"messaging:{tag}-f{i}" for i in (1, 2, 3)]
    got = {st["channel"]["id"]: [m["text"] for m in st["messages"] if m.get("campaign_id") == camp3["id"]] for st in channels_where(client, {"cid": {"$in": filtered}})}
    assert got == {f"{tag}-f1": ["filtered"], f"{tag}-f2": ["filtered"], f"{tag}-f3": []}, got

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
