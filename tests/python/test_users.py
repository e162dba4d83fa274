"""Users through the official Python SDK: upsert, partial update, query, deactivate,
reactivate, delete, restore, guests and token revocation."""

import json
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from stream_chat.base.exceptions import StreamAPIException


def wait_task(client, task_id, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        task = client.get_task(task_id)
        if task["status"] in ("completed", "failed"):
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish")


def test_upsert_returns_users_keyed_by_id_with_custom_fields(client, user_id):
    resp = client.upsert_user({"id": user_id, "role": "admin", "book": "dune", "nested": {"a": [1, 2]}})
    assert "duration" in resp
    user = resp["users"][user_id]
    assert user["role"] == "admin"
    assert user["book"] == "dune"
    assert user["nested"] == {"a": [1, 2]}
    assert user["created_at"] and user["updated_at"]


def test_upsert_replaces_the_whole_user(client, user_id):
    client.upsert_user({"id": user_id, "book": "dune", "color": "red"})
    user = client.upsert_user({"id": user_id, "book": "1984"})["users"][user_id]
    assert user["book"] == "1984"
    assert "color" not in user
    assert user["role"] == "user"


def test_batch_upsert_fails_whole_on_first_error(client):
    good = "u-" + uuid.uuid4().hex[:10]
    with pytest.raises(StreamAPIException) as err:
        client.upsert_users([{"id": good}, {"id": "bad id!"}])
    assert err.value.error_code == 4
    assert client.query_users({"id": good})["users"] == []


def test_upsert_limits(client):
    with pytest.raises(StreamAPIException):
        client.upsert_users([{"id": f"bulk-{i}"} for i in range(101)])
    with pytest.raises(StreamAPIException):
        client.upsert_user({"id": "big-" + uuid.uuid4().hex[:6], "bio": "x" * 6000})


def test_partial_update_sets_and_unsets_dotted_paths(client, user_id):
    client.upsert_user({"id": user_id, "field": {"text": "value", "keep": 1}, "gone": True})
    resp = client.update_user_partial(
        {"id": user_id, "set": {"role": "admin", "field2.subfield": "test"}, "unset": ["field.text", "gone"]}
    )
    user = resp["users"][user_id]
    assert user["role"] == "admin"
    assert user["field"] == {"keep": 1}
    assert user["field2"] == {"subfield": "test"}
    assert "gone" not in user


def test_partial_update_of_missing_user_is_an_error(client):
    with pytest.raises(StreamAPIException):
        client.update_user_partial({"id": "nobody-" + uuid.uuid4().hex[:6], "set": {"a": 1}})


def test_query_users_filters_sorts_and_pages(client):
    tag = uuid.uuid4().hex[:8]
    ids = [f"q-{tag}-{i}" for i in range(5)]
    client.upsert_users([{"id": uid, "tag": tag, "age": i * 10, "name": f"Person {tag} {i}"} for i, uid in enumerate(ids)])
    resp = client.query_users({"tag": tag}, {"age": -1})
    assert [u["id"] for u in resp["users"]] == list(reversed(ids))
    resp = client.query_users({"tag": tag, "age": {"$gte": 20}}, [{"field": "age", "direction": 1}], limit=2, offset=1)
    assert [u["id"] for u in resp["users"]] == ids[3:5]
    resp = client.query_users({"id": {"$in": ids[:2]}})
    assert sorted(u["id"] for u in resp["users"]) == ids[:2]
    resp = client.query_users({"$or": [{"id": ids[0]}, {"age": 40, "tag": tag}]}, {"id": 1})
    assert [u["id"] for u in resp["users"]] == [ids[0], ids[4]]
    resp = client.query_users({"name": {"$autocomplete": tag}}, {"id": 1})
    assert [u["id"] for u in resp["users"]] == ids
    resp = client.query_users({"tag": tag}, id_gt=ids[2])
    assert [u["id"] for u in resp["users"]] == [ids[4], ids[3]]


def test_query_users_rejects_bad_queries(client):
    with pytest.raises(StreamAPIException) as err:
        client.query_users({"id": {"$nope": 1}})
    assert err.value.error_code == 4
    with pytest.raises(StreamAPIException):
        client.query_users({"banned": {"$gt": True}})
    with pytest.raises(StreamAPIException):
        client.query_users({}, offset=1001)


def test_deactivate_and_reactivate(client, user_id):
    client.upsert_user({"id": user_id, "name": "Deactivate Me"})
    user = client.deactivate_user(user_id, mark_messages_deleted=False, created_by_id=user_id)["user"]
    assert user["deactivated_at"]
    assert client.query_users({"id": user_id})["users"] == []
    assert len(client.query_users({"id": user_id}, include_deactivated_users=True)["users"]) == 1
    user = client.reactivate_user(user_id, restore_messages=False, name="I am back")["user"]
    assert "deactivated_at" not in user
    assert user["name"] == "I am back"
    assert len(client.query_users({"id": user_id})["users"]) == 1


def test_batch_deactivate_and_reactivate_run_as_tasks(client):
    ids = ["bd-" + uuid.uuid4().hex[:8] for _ in range(3)]
    client.upsert_users([{"id": i} for i in ids])
    resp = client.deactivate_users(ids, mark_messages_deleted=True)
    assert len(resp["task_id"]) == 36
    task = wait_task(client, resp["task_id"])
    assert task["status"] == "completed"
    assert sorted(u["id"] for u in task["result"]["users"]) == sorted(ids)
    assert all(u["deactivated_at"] for u in task["result"]["users"])
    assert client.query_users({"id": {"$in": ids}})["users"] == []
    # The Python SDK has no reactivate_users (the JS SDK does): same request through its transport.
    task = wait_task(client, client.post("users/reactivate", data={"user_ids": ids})["task_id"])
    assert task["status"] == "completed"
    assert len(client.query_users({"id": {"$in": ids}})["users"]) == 3


def test_delete_soft_hard_and_restore(client):
    soft, hard = "sd-" + uuid.uuid4().hex[:8], "hd-" + uuid.uuid4().hex[:8]
    client.upsert_users([{"id": soft}, {"id": hard}])
    assert client.delete_user(soft)["user"]["deleted_at"]
    assert client.query_users({"id": soft})["users"] == []
    client.restore_users([soft])
    assert len(client.query_users({"id": soft})["users"]) == 1
    client.delete_user(hard, mark_messages_deleted=True, hard_delete=True)
    assert client.query_users({"id": hard})["users"] == []
    # a hard-deleted id can be reused
    assert client.upsert_user({"id": hard})["users"][hard]["id"] == hard


def test_batch_delete_is_a_task_with_per_user_results(client):
    ids = ["del-" + uuid.uuid4().hex[:8] for _ in range(2)]
    client.upsert_users([{"id": i} for i in ids])
    resp = client.delete_users(ids, "hard", conversations="hard", messages="hard")
    task = wait_task(client, resp["task_id"])
    assert task["status"] == "completed"
    for i in ids:
        assert task["result"][i] == {"status": "ok"}
    assert client.query_users({"id": {"$in": ids}})["users"] == []


def test_unknown_task_is_not_found(client):
    with pytest.raises(StreamAPIException) as err:
        client.get_task(str(uuid.uuid4()))
    assert err.value.error_code == 16


def test_unique_usernames_per_app(client):
    client.update_app_settings(enforce_unique_usernames="app")
    try:
        tag = uuid.uuid4().hex[:8]
        first, second = f"un1-{tag}", f"un2-{tag}"
        client.upsert_user({"id": first, "name": f"John Doe {tag}"})
        with pytest.raises(StreamAPIException) as err:
            client.upsert_user({"id": second, "name": f"john.doe{tag}"})
        assert err.value.error_code == 6
        # the owner may keep its name, and a freed name can be taken
        client.upsert_user({"id": first, "name": f"John Doe {tag}", "x": 1})
        client.upsert_user({"id": first, "name": f"Someone Else {tag}"})
        client.upsert_user({"id": second, "name": f"john.doe{tag}"})
        # a batch whose users collide (with each other or with a stored user) writes nothing
        b1, b2, b3 = f"b1-{tag}", f"b2-{tag}", f"b3-{tag}"
        with pytest.raises(StreamAPIException) as err:
            client.upsert_users([{"id": b1, "name": f"Zed {tag}"}, {"id": b2, "name": f"zed{tag}"}])
        assert err.value.error_code == 6
        with pytest.raises(StreamAPIException):
            client.upsert_users([{"id": b3, "name": f"Fresh {tag}"}, {"id": b1, "name": f"JOHN DOE {tag}"}])
        assert client.query_users({"id": {"$in": [b1, b2, b3]}})["users"] == []
    finally:
        client.update_app_settings(enforce_unique_usernames="no")


def test_unique_usernames_per_team(client):
    client.update_app_settings(enforce_unique_usernames="team")
    try:
        tag = uuid.uuid4().hex[:8]
        client.upsert_user({"id": f"t1-{tag}", "name": f"Ann {tag}", "teams": ["red"]})
        client.upsert_user({"id": f"t2-{tag}", "name": f"Ann {tag}", "teams": ["blue"]})
        with pytest.raises(StreamAPIException) as err:
            client.upsert_user({"id": f"t3-{tag}", "name": f"ann{tag}", "teams": ["blue", "green"]})
        assert err.value.error_code == 6
    finally:
        client.update_app_settings(enforce_unique_usernames="no")


def test_guest_user_gets_a_token_and_guest_role(server):
    gid = "guest-" + uuid.uuid4().hex[:8]
    resp = server.request("POST", "/guest", auth_type="anonymous", json={"user": {"id": gid, "name": "Visitor"}})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["user"]["role"] == "guest"
    token = body["access_token"]
    me = server.request("GET", "/users", token=token, params={"payload": '{"filter_conditions": {"id": "%s"}}' % gid})
    assert me.status_code == 200, me.text
    assert me.json()["users"][0]["role"] == "guest"


def test_privacy_settings_are_stored(client, user_id):
    settings = {"typing_indicators": {"enabled": False}, "read_receipts": {"enabled": False}}
    client.upsert_user({"id": user_id, "privacy_settings": settings})
    user = client.query_users({"id": user_id})["users"][0]
    assert user["privacy_settings"] == settings


def test_user_token_revocation(server, client, user_id):
    client.upsert_user({"id": user_id})
    old = server.user_token(user_id, iat=int(time.time()) - 60)
    assert server.request("GET", "/app", token=old).status_code == 200
    client.revoke_user_token(user_id, datetime.now(timezone.utc) - timedelta(seconds=10))
    resp = server.request("GET", "/app", token=old)
    assert resp.status_code == 401
    assert resp.json()["code"] == 42
    fresh = server.user_token(user_id, iat=int(time.time()))
    assert server.request("GET", "/app", token=fresh).status_code == 200
    no_iat = server.user_token(user_id)
    assert server.request("GET", "/app", token=no_iat).json()["code"] == 42
    client.revoke_user_token(user_id, None)
    assert server.request("GET", "/app", token=no_iat).status_code == 200


def test_query_users_by_teams_role_and_dates(client):
    tag = uuid.uuid4().hex[:8]
    red, blue = f"team-{tag}-red", f"team-{tag}-blue"
    client.upsert_users(
        [
            {"id": f"tm-{tag}-1", "teams": [red], "role": "admin", "teams_role": {red: "admin"}},
            {"id": f"tm-{tag}-2", "teams": [red, blue]},
            {"id": f"tm-{tag}-3", "teams": [blue]},
        ]
    )
    got = client.query_users({"teams": {"$contains": red}}, {"id": 1})["users"]
    assert [u["id"] for u in got] == [f"tm-{tag}-1", f"tm-{tag}-2"]
    assert got[0]["teams_role"] == {red: "admin"}
    got = client.query_users({"id": {"$autocomplete": f"tm-{tag}"}, "role": "admin"})["users"]
    assert [u["id"] for u in got] == [f"tm-{tag}-1"]
    since = got[0]["created_at"]
    got = client.query_users({"id": {"$in": [f"tm-{tag}-{i}" for i in (1, 2, 3)]}, "created_at": {"$gte": since}}, {"created_at": -1, "id": -1})
    assert [u["id"] for u in got["users"]] == [f"tm-{tag}-3", f"tm-{tag}-2", f"tm-{tag}-1"]


def test_query_users_by_role_reads_the_role_and_keeps_every_other_condition(client):
    """A `role` filter is answered from the users of that role (after a role change too), with
    the rest of the filter, the sort and the page applied as for any query."""
    tag = uuid.uuid4().hex[:8]
    client.upsert_users(
        [{"id": f"rq-{tag}-{i}", "role": "admin" if i % 2 else "user", "team_size": i} for i in range(8)]
    )
    client.update_users_partial([{"id": f"rq-{tag}-0", "set": {"role": "admin"}}])
    got = client.query_users(
        {"role": {"$in": ["admin"]}, "team_size": {"$lte": 5}, "id": {"$autocomplete": f"rq-{tag}"}},
        {"team_size": -1},
    )["users"]
    assert [u["id"] for u in got] == [f"rq-{tag}-{i}" for i in (5, 3, 1, 0)]
    got = client.query_users({"role": "user", "id": {"$autocomplete": f"rq-{tag}"}}, {"id": 1})["users"]
    assert [u["id"] for u in got] == [f"rq-{tag}-{i}" for i in (2, 4, 6)]


def _talker(client):
    """A user with a channel message and a reply in a thread of someone else's message."""
    talker, host = f"t-{uuid.uuid4().hex[:8]}", f"h-{uuid.uuid4().hex[:8]}"
    client.upsert_users([{"id": talker}, {"id": host}])
    ch = client.channel("messaging", f"c-{uuid.uuid4().hex[:8]}", {"members": [talker, host]})
    ch.create(host)
    said = ch.send_message({"text": "mine"}, talker)["message"]["id"]
    parent = ch.send_message({"text": "host's"}, host)["message"]["id"]
    replied = ch.send_message({"text": "my reply", "parent_id": parent}, talker)["message"]["id"]
    return talker, host, ch, said, parent, replied


def test_deleting_a_user_with_mark_messages_deleted_deletes_their_messages(client):
    talker, host, ch, said, parent, replied = _talker(client)
    client.delete_user(talker, mark_messages_deleted=True)
    assert client.get_message(said)["message"]["type"] == "deleted"
    assert client.get_message(replied)["message"]["type"] == "deleted"
    assert client.get_message(parent)["message"]["type"] == "regular"


def test_deleting_a_user_reaches_channels_they_left_and_wrote_in_without_joining(client):
    talker, host, ch, said, parent, replied = _talker(client)
    ch.remove_members([talker])
    stream = client.channel("livestream", f"l-{uuid.uuid4().hex[:8]}")
    stream.create(host)
    shouted = stream.send_message({"text": "from the crowd"}, talker)["message"]["id"]
    gone = client.channel("messaging", f"g-{uuid.uuid4().hex[:8]}", {"members": [talker, host]})
    gone.create(host)
    buried = gone.send_message({"text": "in a channel deleted later"}, talker)["message"]["id"]
    gone.delete()
    # Every one of them is found as theirs (a deleted channel's message reads as missing).
    found = {m["id"] for m in client.export_user(talker)["messages"]}
    assert {said, replied, shouted, buried} <= found, found
    client.delete_user(talker, mark_messages_deleted=True, hard_delete=True)
    # The deleted channel's export no longer has it.
    task = client.export_channels([{"type": "messaging", "id": gone.id}], include_soft_deleted_channels=True)
    for _ in range(100):
        status = client.get_task(task["task_id"])
        if status["status"] in ("completed", "failed"):
            break
        time.sleep(0.05)
    assert status["status"] == "completed", status
    exported = json.loads(urllib.request.urlopen(status["result"]["url"]).read())
    assert buried not in {m["id"] for m in exported["channels"][0]["messages"]}
    for message in (said, replied, shouted):
        with pytest.raises(StreamAPIException) as missing:
            client.get_message(message)
        assert missing.value.status_code == 404, message
    assert client.get_message(parent)["message"]["text"] == "host's"


def test_hard_deleting_a_user_with_their_messages_removes_them(client):
    talker, host, ch, said, parent, replied = _talker(client)
    client.delete_user(talker, mark_messages_deleted=True, hard_delete=True)
    for gone in (said, replied):
        with pytest.raises(StreamAPIException) as missing:
            client.get_message(gone)
        assert missing.value.status_code == 404
    assert client.get_message(parent)["message"]["text"] == "host's"


def test_deactivation_deletes_and_reactivation_restores_messages(client):
    talker, host, ch, said, parent, replied = _talker(client)
    earlier = ch.send_message({"text": "regretted"}, talker)["message"]["id"]
    client.delete_message(earlier)
    time.sleep(0.01)
    client.deactivate_user(talker, mark_messages_deleted=True)
    assert client.get_message(said)["message"]["type"] == "deleted"
    client.reactivate_user(talker, restore_messages=True)
    assert client.get_message(said)["message"]["type"] == "regular"
    assert client.get_message(replied)["message"]["type"] == "reply"
    # Deleted before the deactivation: stays deleted.
    assert client.get_message(earlier)["message"]["type"] == "deleted"


def test_batch_delete_with_hard_messages_removes_them_in_the_task(client):
    talker, host, ch, said, parent, replied = _talker(client)
    task_id = client.delete_users([talker], "soft", messages="hard")["task_id"]
    wait_task(client, task_id)
    with pytest.raises(StreamAPIException) as missing:
        client.get_message(said)
    assert missing.value.status_code == 404


def test_deleting_a_user_deletes_their_conversations_and_hands_over_their_channels(client):
    gone, friend, heir = (f"{p}-{uuid.uuid4().hex[:8]}" for p in ("g", "f", "h"))
    client.upsert_users([{"id": gone}, {"id": friend}, {"id": heir}])
    one_to_one = client.channel("messaging", f"dm-{uuid.uuid4().hex[:8]}", {"members": [gone, friend]})
    one_to_one.create(gone)
    group = client.channel("messaging", f"gr-{uuid.uuid4().hex[:8]}", {"members": [gone, friend, heir]})
    group.create(gone)
    client.delete_user(gone, delete_conversation_channels=True, new_channel_owner_id=heir)
    cids = [c["channel"]["cid"] for c in client.query_channels({"cid": {"$in": [one_to_one.cid, group.cid]}})["channels"]]
    assert cids == [group.cid], cids
    assert group.query()["channel"]["created_by"]["id"] == heir
    with pytest.raises(StreamAPIException):
        client.delete_user(friend, new_channel_owner_id="nobody-" + uuid.uuid4().hex)


def test_batch_delete_removes_conversations_in_the_task(client):
    gone, friend = (f"{p}-{uuid.uuid4().hex[:8]}" for p in ("g", "f"))
    client.upsert_users([{"id": gone}, {"id": friend}])
    dm = client.channel("messaging", f"dm-{uuid.uuid4().hex[:8]}", {"members": [gone, friend]})
    dm.create(friend)
    task_id = client.delete_users([gone], "soft", conversations="hard")["task_id"]
    assert wait_task(client, task_id)["status"] == "completed"
    assert client.query_channels({"cid": dm.cid})["channels"] == []
