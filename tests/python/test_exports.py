"""Exports, black-box through the official Python SDK: `export_channel(s)` with
`get_export_channel_status` / `get_task` (a background task that completes with a download
link), the three file layouts (v1 JSON, v2 JSON lines, v2 CSV with chosen columns), what a
channel export holds (thread replies, soft-deleted and shadowed messages, truncated history on
request, `messages_since` / `messages_until` both inclusive, users on request), soft-deleted
channels, signed download links that only open their own file, `export_users` (task) and
`export_user` (direct), input validation with Stream's error envelope, and refusal of every
client-side token (see also SERVER_ONLY in test_moderation_access.py)."""

import asyncio
import csv
import io
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime

import pytest
from stream_chat.async_chat import StreamChatAsync
from stream_chat.base.exceptions import StreamAPIException

ENVELOPE = {"code", "message", "StatusCode", "duration", "more_info"}
DEFAULT_CSV_COLUMNS = ["cid", "id", "type", "user_id", "text", "parent_id", "created_at", "updated_at", "deleted_at", "reply_count"]
TASK_TIMEOUT = 10


def uid(prefix="x"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ts(value):
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def wait_task(client, task_id, getter=None):
    """Poll a task (by default through get_task) until it leaves `pending`; return it."""
    getter = getter or client.get_task
    deadline = time.time() + TASK_TIMEOUT
    while True:
        task = getter(task_id)
        assert task["status"] in ("pending", "completed", "failed"), task
        if task["status"] != "pending":
            return task
        assert time.time() < deadline, f"task {task_id} still pending after {TASK_TIMEOUT} s: {task}"
        time.sleep(0.05)


def completed_url(client, task_id, getter=None):
    task = wait_task(client, task_id, getter)
    assert task["status"] == "completed", f"task did not complete: {task}"
    assert "error" not in task, f"a completed task carries an error: {task}"
    return task["result"]["url"]


def download(url):
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200, (url, resp.status)
        return resp.read().decode("utf-8")


def download_status(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def export_file(client, channels, **options):
    """Run a channel export to completion and return the file's text."""
    task = client.export_channels(channels, **options)
    assert task["task_id"], task
    return download(completed_url(client, task["task_id"]))


def export_v1(client, ch, **options):
    doc = json.loads(export_file(client, [{"type": ch.channel_type, "id": ch.id}], **options))
    assert len(doc["channels"]) == 1, doc
    return doc


def export_lines(client, channels, **options):
    text = export_file(client, channels, version="v2", **options)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def export_csv(client, ch, **options):
    raw = export_file(client, [{"type": ch.channel_type, "id": ch.id}], version="v2", format="csv", **options)
    return raw, list(csv.reader(io.StringIO(raw, newline="")))


def message_ids(doc, index=0):
    return [m["id"] for m in doc["channels"][index]["messages"]]


def api_error(excinfo, status=None, words=None):
    err = excinfo.value
    if status is not None:
        assert err.status_code == status, (err.status_code, err.response_text)
    else:
        assert 400 <= err.status_code < 500, (err.status_code, err.response_text)
    body = json.loads(err.response_text)
    assert ENVELOPE <= set(body), body
    assert body["StatusCode"] == err.status_code, body
    if words:
        assert words in body["message"], body
    return body


@pytest.fixture
def people(client):
    admin, member = uid("adm"), uid("mem")
    client.upsert_users([{"id": admin, "name": "Admin " + admin, "role": "admin"}, {"id": member, "name": "Member " + member}])
    return admin, member


@pytest.fixture
def channel(client, people):
    admin, member = people
    ch = client.channel("messaging", uid("c"), {"members": [admin, member]})
    ch.create(admin)
    return ch


# --- the task -------------------------------------------------------------------------------


def test_export_channel_task_completes_with_a_download_url(client, channel, people):
    admin, _ = people
    channel.send_message({"text": "hello"}, admin)
    started = client.export_channel(channel.channel_type, channel.id)
    task_id = started["task_id"]
    assert isinstance(task_id, str) and task_id, started

    status = wait_task(client, task_id, client.get_export_channel_status)
    assert status["status"] == "completed", status
    assert status["task_id"] == task_id, status
    assert ts(status["created_at"]) <= ts(status["updated_at"]), status
    assert "error" not in status, status
    url = status["result"]["url"]
    assert url.startswith("http"), url
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert "expires" in query and "signature" in query, f"download link is not signed: {url}"

    # get_task answers the same task (its link signed anew: the same file, a fresh expiry).
    task = client.get_task(task_id)
    assert task["status"] == "completed" and task["result"]["url"].split("?")[0] == url.split("?")[0], task
    assert task["created_at"] == status["created_at"], (task, status)


def test_unknown_task_is_reported(client):
    missing = str(uuid.uuid4())
    with pytest.raises(StreamAPIException) as err:
        client.get_export_channel_status(missing)
    api_error(err, words="Can't find task")
    with pytest.raises(StreamAPIException) as err:
        client.get_task(missing)
    api_error(err, words="Can't find task")


def test_async_client_exports_a_channel(server, client, channel, people):
    admin, _ = people
    sent = channel.send_message({"text": "from the async test"}, admin)["message"]

    async def scenario():
        async with StreamChatAsync(api_key=server.api_key, api_secret=server.api_secret, base_url=server.url, timeout=10) as aclient:
            started = await aclient.export_channel(channel.channel_type, channel.id)
            deadline = time.time() + TASK_TIMEOUT
            while True:
                status = await aclient.get_export_channel_status(started["task_id"])
                if status["status"] != "pending":
                    return status
                assert time.time() < deadline, status
                await asyncio.sleep(0.05)

    status = asyncio.run(scenario())
    assert status["status"] == "completed" and "error" not in status, status
    doc = json.loads(download(status["result"]["url"]))
    assert message_ids(doc) == [sent["id"]], doc


# --- v1 JSON --------------------------------------------------------------------------------


def test_v1_json_holds_channel_members_messages_and_reactions(client, channel, people):
    admin, member = people
    parent = channel.send_message({"text": "parent"}, admin)["message"]
    reply = channel.send_message({"text": "in thread", "parent_id": parent["id"]}, member)["message"]
    channel.send_reaction(parent["id"], {"type": "love"}, member)

    doc = export_v1(client, channel)
    assert "users" not in doc, "users are exported only with export_users"
    entry = doc["channels"][0]
    assert entry["channel"]["cid"] == channel.cid, entry["channel"]
    assert sorted(m["user_id"] for m in entry["members"]) == sorted([admin, member]), entry["members"]
    by_id = {m["id"]: m for m in entry["messages"]}
    assert set(by_id) == {parent["id"], reply["id"]}, "the thread reply belongs in the export"
    assert by_id[parent["id"]]["text"] == "parent"
    assert by_id[reply["id"]]["parent_id"] == parent["id"], by_id[reply["id"]]
    assert [(r["message_id"], r["user_id"], r["type"]) for r in entry["reactions"]] == [(parent["id"], member, "love")], entry["reactions"]


def test_export_users_option_adds_the_users(client, channel, people):
    admin, member = people
    channel.send_message({"text": "hi"}, member)
    doc = export_v1(client, channel, export_users=True)
    assert "users" in doc, doc.keys()
    users = {u["id"]: u for u in doc["users"]}
    assert {admin, member} <= set(users), users.keys()
    assert users[admin]["name"] == "Admin " + admin, users[admin]


def test_several_channels_in_one_export(client, people):
    admin, _ = people
    channels = []
    for n in range(25):
        ch = client.channel("messaging", uid(f"m{n}"), {"members": [admin]})
        ch.create(admin)
        channels.append(ch)
    sent = channels[3].send_message({"text": "only in the fourth"}, admin)["message"]

    doc = json.loads(export_file(client, [{"type": c.channel_type, "id": c.id} for c in channels]))
    cids = [e["channel"]["cid"] for e in doc["channels"]]
    assert sorted(cids) == sorted(c.cid for c in channels), "25 channels are allowed in one request"
    fourth = next(e for e in doc["channels"] if e["channel"]["cid"] == channels[3].cid)
    assert [m["id"] for m in fourth["messages"]] == [sent["id"]], fourth["messages"]
    assert all(e["messages"] == [] for e in doc["channels"] if e["channel"]["cid"] != channels[3].cid)


# --- v2 JSON lines and CSV ------------------------------------------------------------------


def test_v2_writes_one_json_object_per_line(client, channel, people):
    admin, member = people
    parent = channel.send_message({"text": "v2 parent"}, admin)["message"]
    reply = channel.send_message({"text": "v2 reply", "parent_id": parent["id"]}, member)["message"]
    channel.send_reaction(parent["id"], {"type": "like"}, member)

    lines = export_lines(client, [{"type": channel.channel_type, "id": channel.id}])
    kinds = {line["type"] for line in lines}
    assert kinds == {"channel", "member", "message", "reaction"}, f"no user lines without export_users: {kinds}"
    assert [l["channel"]["cid"] for l in lines if l["type"] == "channel"] == [channel.cid], lines
    assert lines[0]["type"] == "channel", "the channel line comes before its members, messages and reactions"
    for line in lines[1:]:
        assert line["cid"] == channel.cid, line
    assert sorted(l["member"]["user_id"] for l in lines if l["type"] == "member") == sorted([admin, member])
    assert {l["message"]["id"] for l in lines if l["type"] == "message"} == {parent["id"], reply["id"]}
    reactions = [l["reaction"] for l in lines if l["type"] == "reaction"]
    assert [(r["message_id"], r["user_id"], r["type"]) for r in reactions] == [(parent["id"], member, "like")], reactions

    with_users = export_lines(client, [{"type": channel.channel_type, "id": channel.id}], export_users=True)
    users = {l["user"]["id"] for l in with_users if l["type"] == "user"}
    assert {admin, member} <= users, with_users


def test_csv_default_columns_and_rfc4180_quoting(client, channel, people):
    admin, member = people
    awkward = 'commas, "quotes"\nand a new line'
    parent = channel.send_message({"text": awkward}, admin)["message"]
    reply = channel.send_message({"text": "plain", "parent_id": parent["id"]}, member)["message"]

    raw, rows = export_csv(client, channel)
    assert rows[0] == DEFAULT_CSV_COLUMNS, rows[0]
    assert raw.startswith(",".join(DEFAULT_CSV_COLUMNS) + "\r\n"), "rows end with CRLF"
    assert raw.endswith("\r\n"), repr(raw[-20:])
    assert '"commas, ""quotes""\nand a new line"' in raw, f"text is not quoted per RFC 4180: {raw!r}"
    records = {r[1]: dict(zip(rows[0], r)) for r in rows[1:]}
    assert set(records) == {parent["id"], reply["id"]}, "one row per message, thread replies included"
    p, r = records[parent["id"]], records[reply["id"]]
    assert (p["cid"], p["user_id"], p["text"], p["parent_id"], p["reply_count"]) == (channel.cid, admin, awkward, "", "1"), p
    assert (r["user_id"], r["text"], r["parent_id"], r["reply_count"]) == (member, "plain", parent["id"], "0"), r
    assert p["type"] == "regular" and r["type"] == "reply", (p, r)
    assert ts(p["created_at"]) == ts(parent["created_at"]), p
    assert p["deleted_at"] == "", p


def test_csv_include_fields_chooses_the_columns(client, channel, people):
    admin, member = people
    sent = channel.send_message({"text": "pin me", "pinned": True}, admin)["message"]
    channel.send_reaction(sent["id"], {"type": "like"}, member)
    fields = ["id", "pinned", "reaction_counts", "silent", "shadowed", "show_in_channel", "quoted_message_id", "pinned_at", "attachments", "mentioned_users"]

    raw, rows = export_csv(client, channel, include_fields=fields)
    assert rows[0] == fields, f"the header follows include_fields: {rows[0]}"
    assert len(rows) == 2, rows
    row = dict(zip(rows[0], rows[1]))
    assert row["id"] == sent["id"], row
    assert row["pinned"] == "true", row
    assert json.loads(row["reaction_counts"]) == {"like": 1}, row
    assert row["pinned_at"], row


# --- what a channel export holds ------------------------------------------------------------


def test_soft_deleted_messages_keep_their_text_unless_cleared(client, channel, people):
    admin, _ = people
    kept = channel.send_message({"text": "still here"}, admin)["message"]
    gone = channel.send_message({"text": "secret words"}, admin)["message"]
    client.delete_message(gone["id"])

    by_id = {m["id"]: m for m in export_v1(client, channel)["channels"][0]["messages"]}
    assert set(by_id) == {kept["id"], gone["id"]}, "soft-deleted messages are exported"
    assert by_id[gone["id"]]["deleted_at"], by_id[gone["id"]]
    assert by_id[gone["id"]]["text"] == "secret words", by_id[gone["id"]]

    cleared = {m["id"]: m for m in export_v1(client, channel, clear_deleted_message_text=True)["channels"][0]["messages"]}
    assert cleared[gone["id"]]["text"] == "", cleared[gone["id"]]
    assert cleared[kept["id"]]["text"] == "still here", "only deleted messages are cleared"

    _, rows = export_csv(client, channel, clear_deleted_message_text=True)
    records = {r[1]: dict(zip(rows[0], r)) for r in rows[1:]}
    assert records[gone["id"]]["text"] == "" and records[gone["id"]]["deleted_at"], records[gone["id"]]


def test_shadowed_messages_are_exported(client, channel, people):
    admin, member = people
    client.shadow_ban(member, user_id=admin)
    try:
        shadowed = channel.send_message({"text": "nobody sees this"}, member)["message"]
    finally:
        client.remove_shadow_ban(member, user_id=admin)
    assert shadowed["shadowed"] is True, shadowed
    messages = export_v1(client, channel)["channels"][0]["messages"]
    found = [m for m in messages if m["id"] == shadowed["id"]]
    assert found and found[0]["shadowed"] is True, messages


def test_truncated_history_only_on_request(client, channel, people):
    admin, _ = people
    before = channel.send_message({"text": "before truncation"}, admin)["message"]
    channel.truncate()
    time.sleep(0.01)
    after = channel.send_message({"text": "after truncation"}, admin)["message"]

    assert message_ids(export_v1(client, channel)) == [after["id"]]
    assert message_ids(export_v1(client, channel, include_truncated_messages=True)) == [before["id"], after["id"]]


def test_messages_since_and_until_are_inclusive(client, channel, people):
    admin, _ = people
    sent = []
    for n in range(3):
        sent.append(channel.send_message({"text": f"m{n}"}, admin)["message"])
        time.sleep(0.01)
    first, middle, last = sent
    ids = [m["id"] for m in sent]

    def window(since=None, until=None):
        spec = {"type": channel.channel_type, "id": channel.id}
        if since is not None:
            spec["messages_since"] = since
        if until is not None:
            spec["messages_until"] = until
        doc = json.loads(export_file(client, [spec]))
        return message_ids(doc)

    assert window() == ids
    assert window(since=middle["created_at"]) == ids[1:]
    assert window(until=middle["created_at"]) == ids[:2]
    assert window(since=middle["created_at"], until=middle["created_at"]) == [middle["id"]]
    assert window(since=last["created_at"], until=first["created_at"]) == []

    # The SDK's own arguments, with datetime objects (sent as isoformat with +00:00).
    task = client.export_channel(channel.channel_type, channel.id, messages_since=ts(first["created_at"]), messages_until=ts(middle["created_at"]))
    doc = json.loads(download(completed_url(client, task["task_id"])))
    assert message_ids(doc) == ids[:2], doc


def test_unknown_channel_is_refused(client, channel):
    with pytest.raises(StreamAPIException) as err:
        client.export_channel("messaging", uid("missing"))
    api_error(err, words="Can't find channel")
    # One missing channel among good ones fails the request.
    with pytest.raises(StreamAPIException) as err:
        client.export_channels([{"type": channel.channel_type, "id": channel.id}, {"type": "messaging", "id": uid("missing")}])
    api_error(err, words="Can't find channel")


def test_soft_deleted_channel_only_with_include_soft_deleted_channels(client, channel, people):
    admin, _ = people
    sent = channel.send_message({"text": "in a deleted channel"}, admin)["message"]
    channel.delete()
    with pytest.raises(StreamAPIException) as err:
        client.export_channel(channel.channel_type, channel.id)
    api_error(err, words="Can't find channel")

    doc = export_v1(client, channel, include_soft_deleted_channels=True)
    entry = doc["channels"][0]
    assert entry["channel"]["cid"] == channel.cid, entry["channel"]
    assert entry["channel"].get("deleted_at"), entry["channel"]
    assert sent["id"] in [m["id"] for m in entry["messages"]], entry["messages"]


# --- download links -------------------------------------------------------------------------


def _with_query(url, **changes):
    parts = urllib.parse.urlparse(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urllib.parse.urlunparse(parts._replace(query=urllib.parse.urlencode(query)))


def test_download_links_open_only_their_own_file(client, channel, people):
    admin, _ = people
    channel.send_message({"text": "private"}, admin)
    first = client.export_channel(channel.channel_type, channel.id)["task_id"]
    second = client.export_channel(channel.channel_type, channel.id)["task_id"]
    url = completed_url(client, first)
    other_url = completed_url(client, second)
    assert first in url and second in other_url, (url, other_url)
    assert download_status(url) == 200 and download_status(other_url) == 200

    signature = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(url).query))["signature"]
    expires = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(url).query))["expires"]
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    tampered = {
        "tampered signature": _with_query(url, signature=flipped),
        "signature not a signature": _with_query(url, signature="not-a-signature"),
        "signature missing": _with_query(url, signature=None),
        "expires changed": _with_query(url, expires=str(int(expires) + 3600)),
        "another task's path with this signature": url.replace(first, second),
    }
    for what, bad in tampered.items():
        assert download_status(bad) == 404, f"{what}: {bad} was served"
    assert download_status(url) == 200, "the genuine link still works"


# --- users ----------------------------------------------------------------------------------


def test_export_users_task_writes_each_users_messages_and_reactions(client, channel, people):
    admin, member = people
    mine = channel.send_message({"text": "admin wrote"}, admin)["message"]
    theirs = channel.send_message({"text": "member wrote"}, member)["message"]
    channel.send_reaction(mine["id"], {"type": "wow"}, member)

    task = client.export_users([admin, member])
    url = completed_url(client, task["task_id"])
    assert "/exports/users/" in url, url
    doc = json.loads(download(url))
    entries = {e["user"]["id"]: e for e in doc["users"]}
    assert set(entries) == {admin, member}, entries.keys()
    assert [m["id"] for m in entries[admin]["messages"]] == [mine["id"]], entries[admin]
    assert [m["id"] for m in entries[member]["messages"]] == [theirs["id"]], entries[member]
    assert entries[admin]["reactions"] == [], entries[admin]
    assert [(r["message_id"], r["type"]) for r in entries[member]["reactions"]] == [(mine["id"], "wow")], entries[member]


def test_export_users_accepts_25_ids(client):
    ids = [uid("many") for _ in range(25)]
    client.upsert_users([{"id": i} for i in ids])
    doc = json.loads(download(completed_url(client, client.export_users(ids)["task_id"])))
    assert sorted(e["user"]["id"] for e in doc["users"]) == sorted(ids), doc


def test_export_users_refuses_an_unknown_user(client, people):
    admin, _ = people
    with pytest.raises(StreamAPIException) as err:
        client.export_users([admin, uid("ghost")])
    api_error(err)


def test_export_user_answers_directly(client, channel, people):
    admin, member = people
    mine = channel.send_message({"text": "member's own"}, member)["message"]
    admins = channel.send_message({"text": "admin's"}, admin)["message"]
    channel.send_reaction(admins["id"], {"type": "like"}, member)
    # A channel the member wrote in and then left: what they wrote there is still theirs.
    left = client.channel("messaging", uid("left"), {"members": [admin, member]})
    left.create(admin)
    old = left.send_message({"text": "before leaving"}, member)["message"]
    left.send_reaction(old["id"], {"type": "like"}, member)
    left.remove_members([member])
    # A livestream they wrote in without joining.
    stream = client.channel("livestream", uid("live"))
    stream.create(admin)
    spoken = stream.send_message({"text": "from the audience"}, member)["message"]

    out = client.export_user(member)
    assert out["user"]["id"] == member and out["user"]["name"] == "Member " + member, out["user"]
    assert sorted(m["id"] for m in out["messages"]) == sorted([mine["id"], old["id"], spoken["id"]]), out["messages"]
    assert sorted((r["message_id"], r["type"]) for r in out["reactions"]) == sorted(
        [(admins["id"], "like"), (old["id"], "like")]
    ), out["reactions"]


def test_export_user_refuses_an_unknown_user(client):
    with pytest.raises(StreamAPIException) as err:
        client.export_user(uid("ghost"))
    api_error(err)


# --- validation -----------------------------------------------------------------------------


def _bad_channel_requests(ch):
    one = [{"type": ch.channel_type, "id": ch.id}]
    many = [{"type": ch.channel_type, "id": f"{ch.id}-{n}"} for n in range(26)]
    return {
        "26 channels": lambda c: c.export_channels(many),
        "no channels": lambda c: c.export_channels([]),
        "version v3": lambda c: c.export_channels(one, version="v3"),
        "format xml": lambda c: c.export_channels(one, version="v2", format="xml"),
        "csv without v2": lambda c: c.export_channels(one, format="csv"),
        "csv with export_users": lambda c: c.export_channels(one, version="v2", format="csv", export_users=True),
        "include_fields without csv": lambda c: c.export_channels(one, version="v2", include_fields=["id"]),
        "unknown include_fields column": lambda c: c.export_channels(one, version="v2", format="csv", include_fields=["id", "password"]),
        "messages_since yesterday": lambda c: c.export_channel(ch.channel_type, ch.id, messages_since="yesterday"),
        "messages_until tomorrow": lambda c: c.export_channel(ch.channel_type, ch.id, messages_until="tomorrow"),
    }


BAD_CHANNEL_CASES = [
    "26 channels", "no channels", "version v3", "format xml", "csv without v2", "csv with export_users",
    "include_fields without csv", "unknown include_fields column", "messages_since yesterday", "messages_until tomorrow",
]


@pytest.mark.parametrize("case", BAD_CHANNEL_CASES)
def test_bad_channel_export_input_is_a_400(client, channel, case):
    request = _bad_channel_requests(channel)[case]
    with pytest.raises(StreamAPIException) as err:
        request(client)
    body = api_error(err, status=400)
    assert body["code"] == 4, body


@pytest.mark.parametrize("count", [0, 26])
def test_export_users_needs_1_to_25_ids(client, count):
    ids = [uid("n") for _ in range(count)]
    if ids:
        client.upsert_users([{"id": i} for i in ids])
    with pytest.raises(StreamAPIException) as err:
        client.export_users(ids)
    body = api_error(err, status=400)
    assert body["code"] == 4, body


# --- who may export -------------------------------------------------------------------------


def test_client_tokens_cannot_export_or_read_tasks(server, client, channel, people):
    admin, member = people
    task_id = client.export_channel(channel.channel_type, channel.id)["task_id"]
    wait_task(client, task_id)
    calls = [
        ("POST", "/export_channels", {"channels": [{"type": channel.channel_type, "id": channel.id}]}),
        ("GET", f"/export_channels/{task_id}", None),
        ("GET", f"/tasks/{task_id}", None),
        ("POST", "/export/users", {"user_ids": [member]}),
        ("GET", f"/users/{member}/export", None),
        ("GET", f"/users/{admin}/export", None),
    ]
    # Even an admin's own user token, and a member asking about themselves.
    for who in (admin, member):
        for method, path, body in calls:
            r = server.request(method, path, token=server.user_token(who), json=body)
            assert r.status_code in (401, 403), (who, method, path, r.status_code, r.text)
            assert ENVELOPE <= set(r.json()), r.text
            assert "url" not in r.text, f"a refused task read leaks its link: {r.text}"
