"""Channels and members through the official Python SDK (server side), against chat-local."""

import time
import uuid

import pytest
from stream_chat.base.exceptions import StreamAPIException


def uid(prefix="u"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def users(client):
    ids = [uid("m") for _ in range(3)]
    client.upsert_users([{"id": i, "name": f"name {i}"} for i in ids])
    return ids


@pytest.fixture
def creator(client):
    i = uid("owner")
    client.upsert_user({"id": i})
    return i


@pytest.fixture
def channel(client, creator):
    ch = client.channel("messaging", uid("ch"), {"test": True, "language": "python"})
    ch.create(creator)
    return ch


def member_ids(state):
    return sorted(m["user_id"] for m in state["members"])


# --- get-or-create -----------------------------------------------------------------------------


def test_create_returns_channel_state(client, creator, users):
    ch = client.channel("messaging", uid("ch"), {"name": "General", "color": "red", "members": users})
    state = ch.create(creator)
    c = state["channel"]
    assert c["cid"] == f"messaging:{ch.id}"
    assert c["name"] == "General" and c["color"] == "red"
    assert c["created_by"]["id"] == creator
    assert c["member_count"] == 3
    assert c["config"]["name"] == "messaging"
    assert isinstance(c["own_capabilities"], list)
    for key in ("members", "messages", "pinned_messages", "read", "watchers", "watcher_count"):
        assert key in state
    assert member_ids(state) == sorted(users)
    # a second query reads the same channel, it does not recreate it
    again = ch.query()
    assert again["channel"]["created_at"] == c["created_at"]


def test_server_side_create_needs_a_creator(client):
    with pytest.raises(StreamAPIException) as err:
        client.channel("messaging", uid("ch")).query()
    assert err.value.error_code == 4


def test_channel_id_rules(client, creator):
    with pytest.raises(StreamAPIException):
        client.channel("messaging", "x" * 65).create(creator)
    with pytest.raises(StreamAPIException):
        client.channel("messaging", "bad id").create(creator)
    client.channel("messaging", "y" * 64).create(creator)


def test_custom_data_limit(client, creator):
    with pytest.raises(StreamAPIException):
        client.channel("messaging", uid("ch"), {"blob": "x" * 6000}).create(creator)


def test_unknown_members_are_refused(client, creator):
    with pytest.raises(StreamAPIException):
        client.channel("messaging", uid("ch"), {"members": ["nobody-" + uuid.uuid4().hex]}).create(creator)


def test_distinct_channel_is_unique_for_its_member_set(client, users):
    a, b, _ = users
    first = client.channel("messaging", data={"members": [a, b]})
    first.create(a)
    assert first.id.startswith("!members-")
    second = client.channel("messaging", data={"members": [b, a]})
    second.create(b)
    assert second.id == first.id
    # distinct channels refuse new members
    with pytest.raises(StreamAPIException):
        first.add_members([users[2]])
    # query members finds it by members too
    found = client.channel("messaging", first.id).query_members({})
    assert sorted(m["user_id"] for m in found) == sorted([a, b])


def test_hide_for_creator(client, users):
    ch = client.channel("messaging", uid("ch"), {"members": users})
    ch.create(users[0], hide_for_creator=True)
    r = client.query_channels({"cid": ch.cid}, user_id=users[0])
    assert r["channels"] == []
    r = client.query_channels({"cid": ch.cid, "hidden": True}, user_id=users[0])
    assert len(r["channels"]) == 1


def test_member_pagination_limits(client, creator, users):
    ch = client.channel("messaging", uid("ch"), {"members": users})
    ch.create(creator)
    page = ch.query(members={"limit": 2, "offset": 1})
    assert len(page["members"]) == 2
    assert [m["user_id"] for m in page["members"]] == [m["user_id"] for m in ch.query()["members"]][1:3]
    with pytest.raises(StreamAPIException):
        ch.query(members={"limit": 301})
    with pytest.raises(StreamAPIException):
        ch.query(members={"offset": 10001})
    with pytest.raises(StreamAPIException):
        ch.query(messages={"limit": 301})


# --- update ------------------------------------------------------------------------------------


def test_full_update_replaces_custom_data(channel):
    r = channel.update({"motd": "one apple a day..."})
    assert r["channel"]["motd"] == "one apple a day..."
    assert "language" not in r["channel"]


def test_partial_update_set_and_unset(channel):
    channel.update({"color": "blue", "age": 30, "nested": {"a": 1}})
    r = channel.update_partial(to_set={"color": "red", "nested.b": 2}, to_unset=["age"])
    c = r["channel"]
    assert c["color"] == "red"
    assert c["nested"] == {"a": 1, "b": 2}
    assert "age" not in c


def test_reserved_fields_cannot_be_set(channel):
    for field in ("cid", "created_at", "member_count"):
        with pytest.raises(StreamAPIException):
            channel.update_partial(to_set={field: "x"})


def test_frozen_disabled_cooldown_team(channel):
    c = channel.update_partial(to_set={"frozen": True, "cooldown": 30, "team": "blue"})["channel"]
    assert c["frozen"] is True and c["cooldown"] == 30 and c["team"] == "blue"
    with pytest.raises(StreamAPIException):
        channel.update_partial(to_set={"cooldown": 121})
    c = channel.update_partial(to_unset=["frozen", "cooldown"])["channel"]
    assert c["frozen"] is False and "cooldown" not in c


def test_config_overrides(channel):
    c = channel.update_partial(to_set={"config_overrides": {"replies": False, "max_message_length": 100}})["channel"]
    assert c["config"]["replies"] is False
    assert c["config"]["max_message_length"] == 100
    with pytest.raises(StreamAPIException):
        channel.update_partial(to_set={"config_overrides": {"grants": {"user": ["no-such-permission"]}}})


# --- members -----------------------------------------------------------------------------------


def test_add_and_remove_members(channel, users):
    r = channel.add_members(users[:2])
    assert member_ids(r) == sorted(users[:2])
    assert r["channel"]["member_count"] == 2
    assert not r["members"][0].get("is_moderator", False)
    r = channel.remove_members([users[0]])
    assert member_ids(r) == [users[1]]
    assert r["channel"]["member_count"] == 1


def test_add_members_with_history_options(channel, users):
    r = channel.add_members([users[0]], hide_history=True)
    assert len(r["members"]) == 1
    r = channel.add_members([users[1]], hide_history_before="2020-01-01T00:00:00Z")
    assert len(r["members"]) == 2
    with pytest.raises(StreamAPIException):
        channel.add_members([users[2]], hide_history_before="2999-01-01T00:00:00Z")


def test_add_members_with_role_and_custom_data(channel, users):
    r = channel.add_members([{"user_id": users[0], "channel_role": "channel_moderator", "shirt": "red"}])
    m = r["members"][0]
    assert m["channel_role"] == "channel_moderator"
    assert m["shirt"] == "red"
    assert m["is_moderator"] is True


def test_at_most_100_members_per_call(channel):
    with pytest.raises(StreamAPIException):
        channel.add_members([f"x{i}" for i in range(101)])


def test_moderators(channel, users):
    r = channel.add_moderators([users[0]])
    assert r["members"][0]["is_moderator"]
    r = channel.demote_moderators([users[0]])
    assert not r["members"][0].get("is_moderator", False)


def test_assign_roles(channel, users):
    member = {"user_id": users[0], "channel_role": "channel_moderator"}
    r = channel.add_members([member])
    assert r["members"][0]["channel_role"] == "channel_moderator"
    member["channel_role"] = "channel_member"
    r = channel.assign_roles([member])
    assert r["members"][0]["channel_role"] == "channel_member"


def test_invites(client, users):
    john, ringo, eric = users
    ch = client.channel("messaging", uid("beatles"), {"members": users, "invites": [ringo, eric]})
    state = ch.create(john)
    invited = {m["user_id"]: m for m in state["members"]}
    assert invited[ringo]["invited"] is True
    with pytest.raises(StreamAPIException):
        ch.accept_invite("brian-" + uuid.uuid4().hex)
    accept = ch.accept_invite(ringo)
    m = next(m for m in accept["members"] if m["user_id"] == ringo)
    assert m["invited"] is True and "invite_accepted_at" in m
    ch.accept_invite(ringo)  # again: no-op
    reject = ch.reject_invite(eric)
    m = next(m for m in reject["members"] if m["user_id"] == eric)
    assert "invite_rejected_at" in m
    ch.reject_invite(eric)
    # the invite filters of query channels
    assert len(client.query_channels({"cid": ch.cid, "invite": "accepted"}, user_id=ringo)["channels"]) == 1
    assert len(client.query_channels({"cid": ch.cid, "invite": "rejected"}, user_id=eric)["channels"]) == 1
    assert len(client.query_channels({"cid": ch.cid, "joined": True}, user_id=john)["channels"]) == 1
    assert client.query_channels({"cid": ch.cid, "joined": True}, user_id=eric)["channels"] == []


def test_invite_members_later(channel, users):
    r = channel.invite_members([users[0]])
    assert r["members"][0]["invited"] is True
    with pytest.raises(StreamAPIException):
        channel.accept_invite(users[1])


def test_update_member_partial(channel, users):
    channel.add_members([users[0]])
    r = channel.update_member_partial(users[0], to_set={"hat": "blue"})
    assert r["channel_member"]["hat"] == "blue"
    r = channel.update_member_partial(users[0], to_set={"color": "red"}, to_unset=["hat"])
    assert r["channel_member"]["color"] == "red"
    assert "hat" not in r["channel_member"]
    with pytest.raises(StreamAPIException):
        channel.update_member_partial(users[0], to_set={"invited": True})
    with pytest.raises(StreamAPIException):
        channel.update_member_partial(users[1], to_set={"hat": "x"})


def test_pin_and_archive(client, channel, users):
    u = users[0]
    channel.add_members([u])
    r = channel.pin(u)
    assert r["channel_member"]["pinned_at"]
    assert len(client.query_channels({"pinned": True, "cid": channel.cid}, user_id=u)["channels"]) == 1
    channel.unpin(u)
    assert client.query_channels({"pinned": True, "cid": channel.cid}, user_id=u)["channels"] == []
    assert len(client.query_channels({"pinned": False, "cid": channel.cid}, user_id=u)["channels"]) == 1
    r = channel.archive(u)
    assert r["channel_member"]["archived_at"]
    assert len(client.query_channels({"archived": True, "cid": channel.cid}, user_id=u)["channels"]) == 1
    channel.unarchive(u)
    assert len(client.query_channels({"archived": False, "cid": channel.cid}, user_id=u)["channels"]) == 1


def test_hide_and_show(client, channel, users):
    channel.add_members(users)
    u = users[0]
    assert len(client.query_channels({"id": channel.id}, user_id=u)["channels"]) == 1
    channel.hide(u)
    assert client.query_channels({"id": channel.id}, user_id=u)["channels"] == []
    r = client.query_channels({"id": channel.id, "hidden": True}, user_id=u)
    assert len(r["channels"]) == 1
    assert r["channels"][0]["channel"]["hidden"] is True
    # others still see it
    assert len(client.query_channels({"id": channel.id}, user_id=users[1])["channels"]) == 1
    channel.show(u)
    assert len(client.query_channels({"id": channel.id}, user_id=u)["channels"]) == 1


def test_mute_and_unmute(client, channel, users):
    u = users[0]
    channel.add_members([u])
    r = channel.mute(u, expiration=30000)
    mute = r["channel_mute"]
    assert "expires" in mute
    assert mute["channel"]["cid"] == channel.cid
    assert mute["user"]["id"] == u
    assert any(m["channel"]["cid"] == channel.cid for m in r["own_user"]["channel_mutes"])
    assert len(client.query_channels({"muted": True, "cid": channel.cid}, user_id=u)["channels"]) == 1
    channel.unmute(u)
    assert client.query_channels({"muted": True, "cid": channel.cid}, user_id=u)["channels"] == []
    assert len(client.query_channels({"muted": False, "cid": channel.cid}, user_id=u)["channels"]) == 1


def test_mute_expires(client, channel, users):
    u = users[0]
    channel.add_members([u])
    channel.mute(u, expiration=300)
    time.sleep(0.5)
    assert client.query_channels({"muted": True, "cid": channel.cid}, user_id=u)["channels"] == []


# --- query members -----------------------------------------------------------------------------


def test_query_members(client, channel):
    rand = uuid.uuid4().hex[:8]
    ids = [f"{n}-{rand}" for n in ("paul", "george", "john", "jessica", "john2")]
    client.upsert_users([{"id": i, "name": i} for i in ids])
    for i in ids:
        channel.add_members([i])
    r = channel.query_members({"name": {"$autocomplete": "j"}}, sort=[{"field": "created_at", "direction": 1}], offset=1, limit=10)
    assert [m["user"]["id"] for m in r] == [f"jessica-{rand}", f"john2-{rand}"]
    r = channel.query_members({}, sort=[{"field": "user_id", "direction": -1}], limit=2)
    assert [m["user_id"] for m in r] == sorted(ids, reverse=True)[:2]
    r = channel.query_members({}, sort=[{"field": "user_id", "direction": 1}], user_id_gt=sorted(ids)[2])
    assert [m["user_id"] for m in r] == sorted(ids)[3:]
    r = channel.query_members({"id": {"$in": ids[:2]}})
    assert sorted(m["user_id"] for m in r) == sorted(ids[:2])
    with pytest.raises(StreamAPIException):
        channel.query_members({}, limit=101)
    with pytest.raises(StreamAPIException):
        channel.query_members({"invite": "maybe"})


def test_query_members_custom_fields_and_roles(client, channel, users):
    channel.add_members([{"user_id": users[0], "team_color": "red"}, {"user_id": users[1], "team_color": "blue"}])
    channel.add_moderators([users[2]])
    r = channel.query_members({"team_color": "red"})
    assert [m["user_id"] for m in r] == [users[0]]
    r = channel.query_members({"is_moderator": True})
    assert [m["user_id"] for m in r] == [users[2]]
    r = channel.query_members({"channel_role": "channel_member"})
    assert sorted(m["user_id"] for m in r) == sorted(users[:2])


# --- query channels ----------------------------------------------------------------------------


def test_query_channels_filters_and_sorts_on_custom_fields(client, creator):
    tag = uuid.uuid4().hex[:8]
    chans = []
    for i, prio in enumerate([3, 1, 2]):
        ch = client.channel("messaging", uid("q"), {"tag": tag, "priority": prio, "kind": "support" if i else "sales"})
        ch.create(creator)
        chans.append(ch)
    r = client.query_channels({"tag": tag}, sort=[{"field": "priority", "direction": 1}])
    assert [c["channel"]["priority"] for c in r["channels"]] == [1, 2, 3]
    r = client.query_channels({"tag": tag, "priority": {"$gte": 2}}, sort=[{"field": "priority", "direction": -1}])
    assert [c["channel"]["priority"] for c in r["channels"]] == [3, 2]
    r = client.query_channels({"$and": [{"tag": tag}, {"$or": [{"kind": "sales"}, {"priority": 1}]}]})
    assert sorted(c["channel"]["priority"] for c in r["channels"]) == [1, 3]
    r = client.query_channels({"tag": tag, "$nor": [{"kind": "sales"}]})
    assert len(r["channels"]) == 2
    r = client.query_channels({"tag": tag}, sort=[{"field": "priority", "direction": 1}], limit=1, offset=1)
    assert [c["channel"]["priority"] for c in r["channels"]] == [2]


def test_query_channels_by_members_and_counts(client, users):
    a, b, c = users
    one = client.channel("messaging", uid("q"), {"members": [a, b]})
    one.create(a)
    two = client.channel("messaging", uid("q"), {"members": [a, b, c]})
    two.create(a)
    r = client.query_channels({"members": {"$in": [c]}})
    assert [x["channel"]["cid"] for x in r["channels"]] == [two.cid]
    r = client.query_channels({"members": {"$in": [a]}, "member_count": {"$gt": 2}})
    assert [x["channel"]["cid"] for x in r["channels"]] == [two.cid]
    r = client.query_channels({"members": {"$in": [a]}}, sort=[{"field": "member_count", "direction": -1}])
    assert [x["channel"]["cid"] for x in r["channels"]] == [two.cid, one.cid]
    r = client.query_channels({"members": {"$in": [a]}}, member_limit=1)
    assert all(len(x["members"]) == 1 for x in r["channels"])
    r = client.query_channels({"cid": {"$in": [one.cid, two.cid]}, "member.user.name": {"$autocomplete": "name " + c[:8]}})
    assert [x["channel"]["cid"] for x in r["channels"]] == [two.cid]


def test_query_channels_default_sort_is_last_updated(client, creator):
    tag = uuid.uuid4().hex[:8]
    first = client.channel("messaging", uid("q"), {"tag": tag})
    first.create(creator)
    second = client.channel("messaging", uid("q"), {"tag": tag})
    second.create(creator)
    r = client.query_channels({"tag": tag})
    assert [c["channel"]["cid"] for c in r["channels"]] == [second.cid, first.cid]
    # an update does not move a channel; a new message does
    first.update_partial(to_set={"touched": True})
    assert [c["channel"]["cid"] for c in client.query_channels({"tag": tag})["channels"]] == [second.cid, first.cid]
    first.send_message({"text": "bump"}, creator)
    r = client.query_channels({"tag": tag})
    assert [c["channel"]["cid"] for c in r["channels"]] == [first.cid, second.cid]
    r = client.query_channels({"tag": tag, "last_updated": {"$gt": r["channels"][1]["channel"]["created_at"]}})
    assert [c["channel"]["cid"] for c in r["channels"]] == [first.cid]


def test_query_channels_limits(client):
    for opts in ({"limit": 31}, {"offset": 1001}, {"member_limit": 101}, {"message_limit": 301}):
        with pytest.raises(StreamAPIException):
            client.query_channels({"type": "messaging"}, **opts)
    with pytest.raises(StreamAPIException):
        client.query_channels({"invite": "maybe"}, user_id="x")
    with pytest.raises(StreamAPIException):
        client.query_channels({"no_such_op": {"$regex": "x"}})


def test_query_channels_by_time_team_and_flags(client, creator):
    tag = uuid.uuid4().hex[:8]
    ch = client.channel("messaging", uid("q"), {"tag": tag, "team": "red"})
    ch.create(creator)
    frozen = client.channel("messaging", uid("q"), {"tag": tag, "frozen": True, "disabled": True})
    frozen.create(creator)
    r = client.query_channels({"tag": tag, "team": "red"})
    assert [c["channel"]["cid"] for c in r["channels"]] == [ch.cid]
    r = client.query_channels({"tag": tag, "frozen": True})
    assert [c["channel"]["cid"] for c in r["channels"]] == [frozen.cid]
    r = client.query_channels({"tag": tag, "disabled": False})
    assert [c["channel"]["cid"] for c in r["channels"]] == [ch.cid]
    r = client.query_channels({"tag": tag, "created_at": {"$gte": "2020-01-01T00:00:00Z"}, "created_by_id": creator})
    assert len(r["channels"]) == 2
    r = client.query_channels({"tag": tag, "last_message_at": {"$exists": False}})
    assert len(r["channels"]) == 2


# --- delete, truncate, types --------------------------------------------------------------------


def test_delete_and_recreate_is_empty(client, creator, users):
    ch = client.channel("messaging", uid("ch"), {"members": users, "color": "red"})
    ch.create(creator)
    r = ch.delete()
    assert r["channel"]["deleted_at"]
    with pytest.raises(StreamAPIException):
        ch.update({"x": 1})
    again = client.channel("messaging", ch.id).create(creator)
    assert again["members"] == []
    assert "color" not in again["channel"]
    assert client.query_channels({"members": {"$in": [users[0]]}})["channels"] == []


def test_hard_delete(client, channel):
    r = channel.delete(hard=True)
    assert r["channel"]["deleted_at"]
    with pytest.raises(StreamAPIException):
        channel.update_partial(to_set={"x": 1})


def test_batch_delete_is_a_task(client, creator):
    chans = [client.channel("messaging", uid("b")) for _ in range(3)]
    for ch in chans:
        ch.create(creator)
    r = client.delete_channels([c.cid for c in chans], hard_delete=True)
    task_id = r["task_id"]
    for _ in range(100):
        t = client.get_task(task_id)
        if t["status"] == "completed":
            break
        time.sleep(0.05)
    assert t["status"] == "completed"
    assert all(t["result"][c.cid]["status"] == "ok" for c in chans)
    assert client.query_channels({"cid": {"$in": [c.cid for c in chans]}})["channels"] == []
    with pytest.raises(StreamAPIException):
        client.delete_channels([f"messaging:x{i}" for i in range(101)])


def test_truncate(channel, users):
    r = channel.truncate()
    assert r["channel"]["truncated_at"]
    r = channel.truncate(skip_push=True, user_id=users[0], message={"text": "Truncating channel.", "user_id": users[0]})
    assert r["channel"]["truncated_by"]["id"] == users[0]
    with pytest.raises(StreamAPIException):
        channel.truncate(truncated_at="2999-01-01T00:00:00Z")


def test_channel_type_with_channels_cannot_be_deleted(client, creator):
    name = "ct" + uuid.uuid4().hex[:8]
    client.create_channel_type({"name": name})
    ch = client.channel(name, uid("ch"))
    ch.create(creator)
    with pytest.raises(StreamAPIException):
        client.delete_channel_type(name)
    ch.delete()
    client.delete_channel_type(name)


def test_unknown_channel_type(client, creator):
    with pytest.raises(StreamAPIException) as err:
        client.channel("no-such-type", uid("ch")).create(creator)
    assert err.value.error_code == 16


def test_message_count_when_the_type_counts_messages(client, creator):
    name = "cm" + uuid.uuid4().hex[:8]
    client.create_channel_type({"name": name, "count_messages": True})
    counted = client.channel(name, uid("ch")).create(creator)["channel"]
    assert counted["message_count"] == 0
    plain = client.channel("messaging", uid("ch")).create(creator)["channel"]
    assert "message_count" not in plain


# --- messages in the channel state ------------------------------------------------------------


def send(ch, user, n, prefix="m"):
    return [ch.send_message({"id": f"{prefix}{i}-{uuid.uuid4().hex[:6]}", "text": f"{prefix} {i}"}, user)["message"]["id"] for i in range(n)]


def texts(state):
    return [m["text"] for m in state["messages"]]


def test_channel_message_pagination(channel, creator):
    ids = send(channel, creator, 12)
    latest = channel.query(messages={"limit": 5})
    assert [m["id"] for m in latest["messages"]] == ids[-5:]
    assert latest["messages"][0]["user"]["id"] == creator
    older = channel.query(messages={"limit": 5, "id_lt": ids[7]})
    assert [m["id"] for m in older["messages"]] == ids[2:7]
    assert [m["id"] for m in channel.query(messages={"limit": 3, "id_lte": ids[7]})["messages"]] == ids[5:8]
    assert [m["id"] for m in channel.query(messages={"limit": 3, "id_gt": ids[2]})["messages"]] == ids[3:6]
    assert [m["id"] for m in channel.query(messages={"limit": 3, "id_gte": ids[2]})["messages"]] == ids[2:5]
    around = [m["id"] for m in channel.query(messages={"limit": 5, "id_around": ids[6]})["messages"]]
    assert ids[6] in around and len(around) == 5 and around == sorted(around, key=ids.index)
    assert channel.query(messages={"limit": 5, "id_lt": ids[0]})["messages"] == []
    # the default page is 25, oldest first
    assert [m["id"] for m in channel.query()["messages"]] == ids


def test_duplicate_message_id_is_refused(channel, creator):
    msg_id = "dup-" + uuid.uuid4().hex
    channel.send_message({"id": msg_id, "text": "one"}, creator)
    with pytest.raises(StreamAPIException):
        channel.send_message({"id": msg_id, "text": "two"}, creator)
    assert texts(channel.query()) == ["one"]
    with pytest.raises(StreamAPIException):
        channel.send_message({"id": "a,b", "text": "x"}, creator)


def test_messages_update_last_message_at_and_count(client, creator):
    name = "cm" + uuid.uuid4().hex[:8]
    client.create_channel_type({"name": name, "count_messages": True})
    ch = client.channel(name, uid("ch"))
    ch.create(creator)
    send(ch, creator, 3)
    c = ch.query()["channel"]
    assert c["message_count"] == 3
    assert c["last_message_at"]


def test_system_messages_of_channel_changes(channel, creator, users):
    r = channel.update({"name": "renamed"}, {"text": "renamed the channel", "user_id": creator})
    assert r["message"]["type"] == "system"
    r = channel.add_members([users[0]], message={"text": "welcome", "user_id": creator})
    assert r["message"]["text"] == "welcome"
    assert texts(channel.query()) == ["renamed the channel", "welcome"]


def test_truncate_hides_earlier_messages(channel, creator):
    send(channel, creator, 3, "old")
    r = channel.truncate(message={"text": "truncated", "user_id": creator})
    assert r["message"]["text"] == "truncated"
    assert texts(channel.query()) == ["truncated"]
    send(channel, creator, 1, "new")
    assert texts(channel.query()) == ["truncated", "new 0"]
    channel.truncate(hard_delete=True)
    assert channel.query()["messages"] == []


def test_hide_history_for_new_members(client, channel, creator, users):
    send(channel, creator, 2, "before")
    channel.add_members([users[0]], hide_history=True)
    channel.add_members([users[1]])
    send(channel, creator, 1, "after")
    hidden = client.query_channels({"cid": channel.cid}, user_id=users[0])["channels"][0]
    assert texts(hidden) == ["after 0"]
    full = client.query_channels({"cid": channel.cid}, user_id=users[1])["channels"][0]
    assert texts(full) == ["before 0", "before 1", "after 0"]


def test_new_message_shows_a_hidden_channel(client, channel, creator, users):
    channel.add_members(users[:2])
    channel.hide(users[0])
    assert client.query_channels({"cid": channel.cid}, user_id=users[0])["channels"] == []
    channel.send_message({"text": "hi"}, users[1])
    assert len(client.query_channels({"cid": channel.cid}, user_id=users[0])["channels"]) == 1


def test_recreated_channel_has_no_old_messages(client, creator):
    ch = client.channel("messaging", uid("ch"))
    ch.create(creator)
    send(ch, creator, 2)
    ch.delete()
    assert client.channel("messaging", ch.id).create(creator)["messages"] == []


def test_query_channels_sorts_by_last_message_at_and_limits_messages(client, creator):
    tag = uuid.uuid4().hex[:8]
    a = client.channel("messaging", uid("q"), {"tag": tag})
    a.create(creator)
    b = client.channel("messaging", uid("q"), {"tag": tag})
    b.create(creator)
    send(a, creator, 3)
    send(b, creator, 1)
    r = client.query_channels({"tag": tag}, sort=[{"field": "last_message_at", "direction": -1}], message_limit=2)
    assert [c["channel"]["cid"] for c in r["channels"]] == [b.cid, a.cid]
    assert [len(c["messages"]) for c in r["channels"]] == [1, 2]


def test_app_banned_applies_to_two_member_channels(client, users):
    a, b, c = users
    dm = client.channel("messaging", uid("dm"), {"members": [a, b]})
    dm.create(a)
    group = client.channel("messaging", uid("group"), {"members": [a, b, c]})
    group.create(a)
    r = client.query_channels({"members": {"$in": [a]}, "app_banned": "excluded"}, user_id=a)
    assert [x["channel"]["cid"] for x in r["channels"]] == [dm.cid]
    r = client.query_channels({"members": {"$in": [a]}, "app_banned": "only"}, user_id=a)
    assert r["channels"] == []
    with pytest.raises(StreamAPIException):
        client.query_channels({"app_banned": "sometimes"}, user_id=a)


def test_hard_delete_removes_messages(client, creator):
    ch = client.channel("messaging", uid("ch"))
    ch.create(creator)
    msg_id = "hd-" + uuid.uuid4().hex
    ch.send_message({"id": msg_id, "text": "x"}, creator)
    ch.delete()
    again = client.channel("messaging", ch.id)
    again.create(creator)
    with pytest.raises(StreamAPIException):  # a soft delete keeps the message (and its id)
        again.send_message({"id": msg_id, "text": "y"}, creator)
    again.delete(hard=True)
    third = client.channel("messaging", ch.id)
    third.create(creator)
    third.send_message({"id": msg_id, "text": "z"}, creator)  # the id is free again
    assert texts(third.query()) == ["z"]


def test_query_members_created_at_pagination(channel, users):
    for u in users:
        channel.add_members([u])
    all_members = channel.query_members({}, sort=[{"field": "created_at", "direction": 1}])
    assert [m["user_id"] for m in all_members] == users
    pivot = all_members[1]["created_at"]
    after = channel.query_members({}, created_at_after=pivot)
    assert [m["user_id"] for m in after] == users[2:]
    upto = channel.query_members({}, created_at_before_or_equal=pivot)
    assert [m["user_id"] for m in upto] == users[:2]
    before = channel.query_members({}, sort=[{"field": "created_at", "direction": -1}], created_at_before=pivot)
    assert [m["user_id"] for m in before] == users[:1]


def test_query_channels_pages_a_members_many_channels_in_sort_order(client):
    """A member of many channels asking for a page gets exactly the page a full sort gives:
    channels the filter leaves out, hidden channels and deleted channels are skipped, ties keep
    cid order, and every offset is consistent (the server reads only as many whole channels as
    the page needs)."""
    me = uid("many")
    other = uid("other")
    client.upsert_users([{"id": me}, {"id": other}])
    tag = uid("tag")
    channels = []
    for i in range(36):
        ch = client.channel(
            "messaging", f"{tag}-{i:02d}", {"color": "red" if i % 3 else "blue", "tag": tag, "rank": i % 4}
        )
        ch.create(other)
        ch.add_members([me])
        channels.append(ch)
    # Messages in a shuffled order give the channels distinct last_message_at values.
    for i in [7, 3, 30, 12, 1, 25, 19, 33, 8, 14, 22, 5, 28, 0, 35, 10]:
        channels[i].send_message({"text": f"in {i}"}, other)
    channels[7].hide(me)
    channels[14].delete()
    everything = client.query_channels(
        {"tag": tag, "members": {"$in": [me]}}, user_id=me, limit=30
    )["channels"]
    assert len(everything) == 30
    assert len(client.query_channels({"tag": tag, "members": {"$in": [me]}}, user_id=me, limit=30, offset=30)["channels"]) == 4

    def expected(sort_key, red_only):
        docs = [
            c["channel"]
            for off in range(0, 40, 30)
            for c in client.query_channels(
                {"tag": tag, "members": {"$in": [me]}}, user_id=me, limit=30, offset=off
            )["channels"]
        ]
        if red_only:
            docs = [d for d in docs if d["color"] == "red"]
        return [d["cid"] for d in sorted(docs, key=sort_key)]

    newest_first = lambda d: (  # noqa: E731
        "0" if d.get("last_message_at") else "1",
        "".join(chr(0x10FFFF - ord(ch)) for ch in (d.get("last_message_at") or "")),
        d["cid"],
    )
    want = expected(newest_first, red_only=True)
    assert len(want) == 22, "36 channels, 12 blue, one hidden red, one deleted red"
    got = []
    for offset in range(0, len(want) + 5, 5):
        page = client.query_channels(
            {"tag": tag, "color": "red", "members": {"$in": [me]}},
            {"last_message_at": -1},
            user_id=me,
            limit=5,
            offset=offset,
        )["channels"]
        got.extend(c["channel"]["cid"] for c in page)
    assert got == want

    by_rank = expected(lambda d: (d["rank"], d["cid"]), red_only=False)
    got = []
    for offset in range(0, 40, 4):
        page = client.query_channels(
            {"tag": tag, "members": {"$in": [me]}},
            [{"field": "rank", "direction": 1}],
            user_id=me,
            limit=4,
            offset=offset,
        )["channels"]
        got.extend(c["channel"]["cid"] for c in page)
    assert got == by_rank
    assert channels[7].cid not in got and channels[14].cid not in got
