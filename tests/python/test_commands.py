"""Slash commands through the official Python SDK (server side) and raw HTTP with user tokens,
against chat-local: custom commands CRUD and its validation, custom commands on channel types
(shown among the type's command objects, not deletable while a type names them); messages whose
text is `/name args` on a type that enables `name` run the command instead of being sent:
`/giphy` answers an ephemeral preview that is never stored nor broadcast, whose send / shuffle /
cancel actions only its author may take; `/mute`, `/unmute`, `/ban`, `/unban` and `/flag` act
as the author with the author's permissions; a command the type does not enable is plain text;
a custom command answers that its handler is not available."""

import json
import uuid

import pytest
from stream_chat.base.exceptions import StreamAPIException

from conftest import read_until

ENVELOPE = {"code", "message", "StatusCode", "duration", "more_info"}
BUILTINS = ["giphy", "ban", "unban", "mute", "unmute", "imgur", "flag"]
RENDITIONS = [
    "original",
    "fixed_height",
    "fixed_height_still",
    "fixed_height_downsampled",
    "fixed_width",
    "fixed_width_still",
    "fixed_width_downsampled",
]


def uid(prefix="c"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def cmd_name(prefix="cmd"):
    """A fresh custom command name (lowercase letters, digits, _ and -)."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def refused(call):
    with pytest.raises(StreamAPIException) as err:
        call()
    return err.value


@pytest.fixture
def command(client):
    """A custom command, deleted after the test (if still there)."""
    name = cmd_name()
    created = client.create_command({"name": name, "description": "Open a ticket", "args": "[text]", "set": "fun_set"})
    yield name, created
    try:
        client.delete_command(name)
    except StreamAPIException:
        pass


@pytest.fixture
def own_type(client):
    """A channel type of this test's own (channel types are shared by the session), with its
    channels: `make(commands)` creates the type; channels made with `channel(...)` are deleted
    with it afterwards."""
    made = {"name": None, "channels": []}

    def make(commands):
        name = "cmd" + uuid.uuid4().hex[:8]
        client.create_channel_type({"name": name, "commands": ["all"]})
        made["name"] = name
        # The SDK turns an empty `commands` on create into ["all"]: set the real list after.
        client.update_channel_type(name, commands=commands)
        return name

    def channel(members, creator):
        ch = client.channel(made["name"], uid("ch"), {"members": members})
        ch.create(creator)
        made["channels"].append(ch)
        return ch

    make.channel = channel
    yield make
    for ch in made["channels"]:
        ch.delete()
    if made["name"]:
        client.update_channel_type(made["name"], commands=["all"])
        client.delete_channel_type(made["name"])


@pytest.fixture
def scene(client):
    """A messaging channel with an author, a target (bob), a channel moderator and a bystander."""
    author, bob, mod, other = uid("au"), uid("bob"), uid("mod"), uid("oth")
    client.upsert_users([{"id": author}, {"id": bob}, {"id": mod}, {"id": other}])
    ch = client.channel("messaging", uid("room"), {"members": [author, bob, mod, other]})
    ch.create(author)
    ch.add_moderators([mod])
    return {"author": author, "bob": bob, "mod": mod, "other": other, "channel": ch}


def send_as(server, user, ch, text, **fields):
    """POST a message with a user token, as a client SDK does."""
    return server.request(
        "POST", f"/channels/{ch.channel_type}/{ch.id}/message", token=server.user_token(user),
        json={"message": {"text": text, **fields}},
    )


def bans_in(client, ch):
    return client.query_banned_users({"filter_conditions": {"channel_cid": ch.cid}})["bans"]


def stored_ids(ch):
    return [m["id"] for m in ch.query(messages={"limit": 100})["messages"]]


def assert_giphy_attachment(attachment, query, with_actions):
    assert attachment["type"] == "giphy", attachment
    assert attachment["title"], attachment
    for key in ("title_link", "thumb_url", "image_url"):
        assert isinstance(attachment[key], str) and attachment[key], (key, attachment)
    giphy = attachment["giphy"]
    for rendition in ("original", "fixed_height"):
        assert rendition in giphy, giphy.keys()
    for name, rendition in giphy.items():
        assert rendition["url"] and rendition["width"] and rendition["height"], (name, rendition)
    if with_actions:
        actions = attachment["actions"]
        assert [(a["name"], a["value"], a["type"]) for a in actions] == [
            ("image_action", "send", "button"),
            ("image_action", "shuffle", "button"),
            ("image_action", "cancel", "button"),
        ], actions
        assert all(a["text"] for a in actions)
    else:
        assert not attachment.get("actions"), attachment


# --- Custom commands: CRUD ---------------------------------------------------------------


def test_list_starts_with_the_builtins_then_custom_commands(client, command):
    name, _ = command
    listed = client.list_commands()["commands"]
    names = [c["name"] for c in listed]
    assert names[: len(BUILTINS)] == BUILTINS, names
    assert name in names[len(BUILTINS):], names
    giphy = listed[0]
    assert giphy["set"] == "fun_set" and giphy["description"] and giphy["args"], giphy
    assert {c["name"]: c["set"] for c in listed}["ban"] == "moderation_set"


def test_create_get_update_delete_a_custom_command(client):
    name = cmd_name()
    created = client.create_command({"name": name, "description": "Open a ticket", "args": "[text]", "set": "fun_set"})
    c = created["command"]
    assert (c["name"], c["description"], c["args"], c["set"]) == (name, "Open a ticket", "[text]", "fun_set")
    assert c["created_at"] and c["updated_at"]
    got = client.get_command(name)
    assert (got["name"], got["description"], got["args"], got["set"]) == (name, "Open a ticket", "[text]", "fun_set")
    updated = client.update_command(name, description="Open a support ticket")["command"]
    assert updated["name"] == name and updated["description"] == "Open a support ticket"
    assert updated["args"] == "[text]" and updated["set"] == "fun_set", updated
    assert client.get_command(name)["description"] == "Open a support ticket"
    moved = client.update_command(name, set="moderation_set", args="[@username]")["command"]
    assert (moved["set"], moved["args"], moved["description"]) == ("moderation_set", "[@username]", "Open a support ticket")
    client.delete_command(name)
    assert name not in [x["name"] for x in client.list_commands()["commands"]]
    gone = refused(lambda: client.get_command(name))
    assert gone.status_code == 404 and gone.error_code == 16


def test_a_custom_command_without_set_or_args(client):
    name = cmd_name()
    c = client.create_command({"name": name, "description": "Plain"})["command"]
    assert c["set"] == "" and c["args"] == "", c
    client.delete_command(name)


def test_builtins_read_like_commands(client):
    for name in BUILTINS:
        got = client.get_command(name)
        assert got["name"] == name and got["description"], got
        assert got["set"] in ("fun_set", "moderation_set"), got


def test_unknown_commands_are_404(client):
    name = cmd_name("nope")
    for call in (
        lambda: client.get_command(name),
        lambda: client.update_command(name, description="x"),
        lambda: client.delete_command(name),
    ):
        err = refused(call)
        assert err.status_code == 404 and err.error_code == 16, str(err)


def test_builtins_cannot_be_deleted(client):
    err = refused(lambda: client.delete_command("giphy"))
    assert 400 <= err.status_code < 500
    assert "giphy" in [c["name"] for c in client.list_commands()["commands"]]


def test_a_duplicate_name_is_refused(client, command):
    name, _ = command
    err = refused(lambda: client.create_command({"name": name, "description": "again"}))
    assert err.status_code == 400 and err.error_code == 4, str(err)
    assert client.get_command(name)["description"] == "Open a ticket"


@pytest.mark.parametrize(
    "body",
    [
        {"description": "no name"},
        {"name": "", "description": "empty name"},
        {"name": "Ticket", "description": "upper case"},
        {"name": "has space", "description": "space"},
        {"name": "dot.ted", "description": "dot"},
        {"name": "x" * 65, "description": "too long"},
        {"name": "giphy", "description": "a built-in"},
        {"name": "ban", "description": "a built-in"},
        {"name": "flag", "description": "a legacy built-in"},
        {"name": "imgur", "description": "a legacy built-in"},
        {"name": "all", "description": "a set"},
        {"name": "fun_set", "description": "a set"},
        {"name": "moderation_set", "description": "a set"},
        {"name": "TICKET", "description": "all upper case"},
        {"name": "nodesc"},
        {"name": "emptydesc", "description": ""},
        {"name": "longdesc", "description": "d" * 256},
        {"name": "badset", "description": "x", "set": "party_set"},
        {"name": "badset2", "description": "x", "set": "all"},
    ],
)
def test_invalid_commands_are_refused(client, body):
    body = dict(body)
    # Valid-looking names get a unique suffix so no other test's command collides.
    if body.get("name") in ("nodesc", "emptydesc", "longdesc", "badset", "badset2"):
        body["name"] = cmd_name(body["name"])
    err = refused(lambda: client.create_command(body))
    assert err.status_code == 400 and err.error_code == 4, (body, str(err))
    if body.get("name"):
        assert body["name"] not in [c["name"] for c in client.list_commands()["commands"]][len(BUILTINS):]


def test_limits_are_inclusive(client):
    name = ("n" + uuid.uuid4().hex) + "_" * 64
    name = name[:64]
    c = client.create_command({"name": name, "description": "d" * 255, "args": "a" * 255})["command"]
    assert c["name"] == name and len(c["description"]) == 255
    client.delete_command(name)


def test_invalid_updates_are_refused(client, command):
    name, _ = command
    for settings in ({"set": "party_set"}, {"description": ""}, {"description": "d" * 256}):
        err = refused(lambda: client.update_command(name, **settings))
        assert err.status_code == 400 and err.error_code == 4, (settings, str(err))
    got = client.get_command(name)
    assert (got["description"], got["set"]) == ("Open a ticket", "fun_set")


# --- Custom commands on channel types ---------------------------------------------------------


def test_a_custom_command_on_a_channel_type(client, command, own_type):
    name, _ = command
    ct = own_type(["all"])
    updated = client.update_channel_type(ct, commands=["all", name])
    assert updated["commands"] == ["all", name]
    shown = client.get_channel_type(ct)["commands"]
    assert [c["name"] for c in shown] == ["giphy", "ban", "unban", "mute", "unmute", name], shown
    ticket = shown[-1]
    assert (ticket["description"], ticket["args"], ticket["set"]) == ("Open a ticket", "[text]", "fun_set")
    listed = client.list_channel_types()["channel_types"][ct]["commands"]
    assert [c["name"] for c in listed] == [c["name"] for c in shown]


def test_a_custom_command_shows_in_a_channels_config(client, command, own_type):
    name, _ = command
    own_type(["giphy", name])
    user = uid("u")
    client.upsert_user({"id": user})
    ch = own_type.channel([user], user)
    config = ch.query()["channel"]["config"]
    assert [c["name"] for c in config["commands"]] == ["giphy", name], config["commands"]


def test_sets_include_custom_commands_of_that_set(client, own_type):
    fun, mod = cmd_name("fun"), cmd_name("mod")
    client.create_command({"name": fun, "description": "Fun", "set": "fun_set"})
    client.create_command({"name": mod, "description": "Mod", "set": "moderation_set"})
    try:
        ct = own_type(["fun_set"])
        names = [c["name"] for c in client.get_channel_type(ct)["commands"]]
        assert "giphy" in names and fun in names, names
        assert "ban" not in names and mod not in names, names
        client.update_channel_type(ct, commands=["moderation_set"])
        names = [c["name"] for c in client.get_channel_type(ct)["commands"]]
        assert {"ban", "unban", "mute", "unmute", mod} <= set(names), names
        assert "giphy" not in names and fun not in names, names
    finally:
        client.delete_command(fun)
        client.delete_command(mod)


def test_an_unknown_command_cannot_be_put_on_a_type(client, own_type):
    ct = own_type(["all"])
    err = refused(lambda: client.update_channel_type(ct, commands=["all", cmd_name("ghost")]))
    assert err.status_code == 400 and err.error_code == 4, str(err)
    assert [c["name"] for c in client.get_channel_type(ct)["commands"]] == ["giphy", "ban", "unban", "mute", "unmute"]


def test_a_command_in_use_cannot_be_deleted(client, command, own_type):
    name, _ = command
    ct = own_type(["all", name])
    err = refused(lambda: client.delete_command(name))
    assert err.status_code == 400 and err.error_code == 4, str(err)
    assert ct in str(err), str(err)
    assert client.get_command(name)["name"] == name
    client.update_channel_type(ct, commands=["all"])
    client.delete_command(name)
    assert refused(lambda: client.get_command(name)).status_code == 404


# --- /giphy -------------------------------------------------------------------------------------


def test_giphy_answers_an_ephemeral_preview_that_is_not_stored(client, server, scene):
    ch, author = scene["channel"], scene["author"]
    before = ch.query()["channel"]
    r = ch.send_message({"text": "/giphy cat"}, author)
    preview = r["message"]
    assert preview["type"] == "ephemeral", preview
    assert preview["command"] == "giphy" and preview["args"] == "cat", preview
    assert preview["user"]["id"] == author and preview["cid"] == ch.cid
    assert len(preview["attachments"]) == 1
    assert_giphy_attachment(preview["attachments"][0], "cat", with_actions=True)
    assert set(RENDITIONS) <= set(preview["attachments"][0]["giphy"]), preview["attachments"][0]["giphy"].keys()
    # Nothing in the channel: no message, no last_message_at change, not readable by id.
    state = ch.query(messages={"limit": 100})
    assert preview["id"] not in [m["id"] for m in state["messages"]]
    assert state["messages"] == []
    assert state["channel"].get("last_message_at") == before.get("last_message_at")
    err = refused(lambda: client.get_message(preview["id"]))
    assert err.status_code == 404
    # Nobody else has anything unread.
    seen = server.request(
        "POST", f"/channels/{ch.channel_type}/{ch.id}/query", token=server.user_token(scene["other"]), json={"state": True}
    )
    assert seen.status_code in (200, 201), seen.text
    assert {r["user"]["id"]: r["unread_messages"] for r in seen.json()["read"]}[scene["other"]] == 0


def test_giphy_is_deterministic_per_query(client, scene):
    ch, author = scene["channel"], scene["author"]
    a = ch.send_message({"text": "/giphy funny cat"}, author)["message"]
    b = ch.send_message({"text": "/giphy funny cat"}, author)["message"]
    c = ch.send_message({"text": "/giphy dog"}, author)["message"]
    assert a["args"] == "funny cat"
    assert a["id"] != b["id"]
    assert a["attachments"][0]["image_url"] == b["attachments"][0]["image_url"]
    assert a["attachments"][0]["image_url"] != c["attachments"][0]["image_url"]


@pytest.mark.parametrize("text", ["/giphy", "/giphy   "])
def test_giphy_without_words_is_refused(client, scene, text):
    ch = scene["channel"]
    err = refused(lambda: ch.send_message({"text": text}, scene["author"]))
    assert err.status_code == 400 and err.error_code == 4, str(err)
    assert stored_ids(ch) == []


def test_shuffle_then_send(client, scene):
    ch, author = scene["channel"], scene["author"]
    preview = ch.send_message({"text": "/giphy cat"}, author)["message"]
    first_url = preview["attachments"][0]["image_url"]
    shuffled = client.run_message_action(preview["id"], {"form_data": {"image_action": "shuffle"}, "user_id": author})["message"]
    assert shuffled["id"] == preview["id"]
    assert shuffled["type"] == "ephemeral" and shuffled["command"] == "giphy", shuffled
    assert_giphy_attachment(shuffled["attachments"][0], "cat", with_actions=True)
    second_url = shuffled["attachments"][0]["image_url"]
    assert second_url != first_url
    again = client.run_message_action(preview["id"], {"form_data": {"image_action": "shuffle"}, "user_id": author})["message"]
    assert again["attachments"][0]["image_url"] != second_url
    assert stored_ids(ch) == []
    chosen = again["attachments"][0]
    sent = client.run_message_action(preview["id"], {"form_data": {"image_action": "send"}, "user_id": author})["message"]
    assert sent["id"] == preview["id"]
    assert sent["type"] == "regular" and sent["command"] == "giphy", sent
    assert sent["text"] == "" and sent["user"]["id"] == author
    assert len(sent["attachments"]) == 1
    assert_giphy_attachment(sent["attachments"][0], "cat", with_actions=False)
    assert sent["attachments"][0]["image_url"] == chosen["image_url"]
    # Stored: in the channel, by id.
    state = ch.query(messages={"limit": 10})
    assert [m["id"] for m in state["messages"]] == [preview["id"]]
    stored = client.get_message(preview["id"])["message"]
    assert stored["command"] == "giphy" and stored["type"] == "regular"
    assert_giphy_attachment(stored["attachments"][0], "cat", with_actions=False)
    # The preview is gone: acting again is 404.
    err = refused(lambda: client.run_message_action(preview["id"], {"form_data": {"image_action": "send"}, "user_id": author}))
    assert err.status_code == 404, str(err)
    assert stored_ids(ch) == [preview["id"]]


def test_send_right_away(client, scene):
    ch, author = scene["channel"], scene["author"]
    preview = ch.send_message({"text": "/giphy party"}, author)["message"]
    sent = client.run_message_action(preview["id"], {"form_data": {"image_action": "send"}, "user_id": author})["message"]
    assert sent["attachments"][0]["image_url"] == preview["attachments"][0]["image_url"]
    assert stored_ids(ch) == [preview["id"]]


def test_cancel_leaves_nothing(client, scene):
    ch, author = scene["channel"], scene["author"]
    preview = ch.send_message({"text": "/giphy cat"}, author)["message"]
    r = client.run_message_action(preview["id"], {"form_data": {"image_action": "cancel"}, "user_id": author})
    assert "message" not in r, r
    assert stored_ids(ch) == []
    for action in ("send", "shuffle", "cancel"):
        err = refused(lambda: client.run_message_action(preview["id"], {"form_data": {"image_action": action}, "user_id": author}))
        assert err.status_code == 404 and err.error_code == 16, (action, str(err))
    assert stored_ids(ch) == []


def test_only_the_author_acts_on_a_preview(client, server, scene):
    ch, author, other = scene["channel"], scene["author"], scene["other"]
    preview = ch.send_message({"text": "/giphy cat"}, author)["message"]
    for action in ("send", "shuffle", "cancel"):
        err = refused(lambda: client.run_message_action(preview["id"], {"form_data": {"image_action": action}, "user_id": other}))
        assert err.status_code == 403 and err.error_code == 17, (action, str(err))
        r = server.request(
            "POST", f"/messages/{preview['id']}/action", token=server.user_token(other),
            json={"form_data": {"image_action": action}},
        )
        assert r.status_code == 403 and r.json()["code"] == 17, r.text
        assert ENVELOPE <= set(r.json()), r.text
    anonymous = server.request(
        "POST", f"/messages/{preview['id']}/action", auth_type="anonymous", json={"form_data": {"image_action": "send"}}
    )
    assert anonymous.status_code in (401, 403), anonymous.text
    guest = server.request("POST", "/guest", auth_type="anonymous", json={"user": {"id": f"g-{uuid.uuid4().hex[:8]}"}})
    assert guest.status_code in (200, 201), guest.text
    as_guest = server.request(
        "POST", f"/messages/{preview['id']}/action", token=guest.json()["access_token"],
        json={"form_data": {"image_action": "send"}},
    )
    assert as_guest.status_code == 403 and ENVELOPE <= set(as_guest.json()), as_guest.text
    assert stored_ids(ch) == []
    # The author still can.
    r = server.request(
        "POST", f"/messages/{preview['id']}/action", token=server.user_token(author),
        json={"form_data": {"image_action": "send"}},
    )
    assert r.status_code in (200, 201), r.text
    assert r.json()["message"]["command"] == "giphy"
    assert stored_ids(ch) == [preview["id"]]


def test_unknown_previews_and_actions(client, scene):
    ch, author = scene["channel"], scene["author"]
    err = refused(lambda: client.run_message_action(str(uuid.uuid4()), {"form_data": {"image_action": "send"}, "user_id": author}))
    assert err.status_code == 404 and err.error_code == 16, str(err)
    # A stored regular message is no preview either.
    plain = ch.send_message({"text": "hello"}, author)["message"]
    err = refused(lambda: client.run_message_action(plain["id"], {"form_data": {"image_action": "send"}, "user_id": author}))
    assert err.status_code == 404, str(err)
    preview = ch.send_message({"text": "/giphy cat"}, author)["message"]
    for form in ({"image_action": "dance"}, {}, {"image_action": ""}):
        err = refused(lambda: client.run_message_action(preview["id"], {"form_data": form, "user_id": author}))
        assert err.status_code == 400 and err.error_code == 4, (form, str(err))
    # Server side, the acting user must be named.
    err = refused(lambda: client.run_message_action(preview["id"], {"form_data": {"image_action": "send"}}))
    assert err.status_code == 400, str(err)
    # The preview survived all that.
    sent = client.run_message_action(preview["id"], {"form_data": {"image_action": "send"}, "user_id": author})["message"]
    assert sent["id"] == preview["id"]
    assert stored_ids(ch) == [plain["id"], preview["id"]]


def test_giphy_in_a_thread_is_sent_as_a_reply(client, scene):
    ch, author = scene["channel"], scene["author"]
    parent = ch.send_message({"text": "parent"}, author)["message"]
    preview = ch.send_message({"text": "/giphy cat", "parent_id": parent["id"]}, author)["message"]
    assert preview["type"] == "ephemeral" and preview.get("parent_id") == parent["id"], preview
    client.run_message_action(preview["id"], {"form_data": {"image_action": "send"}, "user_id": author})
    replies = ch.get_replies(parent["id"])["messages"]
    assert [(m["id"], m["command"]) for m in replies] == [(preview["id"], "giphy")]
    assert client.get_message(parent["id"])["message"]["reply_count"] == 1


def test_a_client_chosen_id_carries_through(client, scene):
    ch, author = scene["channel"], scene["author"]
    mine = str(uuid.uuid4())
    preview = ch.send_message({"id": mine, "text": "/giphy cat"}, author)["message"]
    assert preview["id"] == mine
    sent = client.run_message_action(mine, {"form_data": {"image_action": "send"}, "user_id": author})["message"]
    assert sent["id"] == mine
    assert stored_ids(ch) == [mine]


def test_watchers_hear_only_the_sent_gif(client, server, scene):
    ch, author, other = scene["channel"], scene["author"], scene["other"]
    ws, hello = server.connect_socket(other)
    try:
        r = server.request(
            "POST", f"/channels/{ch.channel_type}/{ch.id}/query", token=server.user_token(other),
            params={"connection_id": hello["connection_id"]}, json={"watch": True, "state": True},
        )
        assert r.status_code in (200, 201), r.text
        preview = ch.send_message({"text": "/giphy cat"}, author)["message"]
        client.run_message_action(preview["id"], {"form_data": {"image_action": "shuffle"}, "user_id": author})
        ch.send_message({"text": "marker"}, author)
        frames = read_until(ws, lambda f: f.get("type") == "message.new" and f["message"]["text"] == "marker")
        news = [f["message"]["id"] for f in frames if f.get("type") == "message.new"]
        assert preview["id"] not in news and len(news) == 1, news
        assert preview["id"] not in json.dumps(frames)
        client.run_message_action(preview["id"], {"form_data": {"image_action": "send"}, "user_id": author})
        frames = read_until(ws, lambda f: f.get("type") == "message.new")
        heard = [f for f in frames if f.get("type") == "message.new"]
        assert heard and heard[0]["message"]["id"] == preview["id"], [f.get("type") for f in frames]
        assert heard[0]["message"]["command"] == "giphy"
        assert_giphy_attachment(heard[0]["message"]["attachments"][0], "cat", with_actions=False)
    finally:
        ws.close()


# --- Moderation commands -------------------------------------------------------------------------


def test_mute_and_unmute_commands(client, server, scene):
    ch, author, bob = scene["channel"], scene["author"], scene["bob"]
    reply = ch.send_message({"text": f"/mute @{bob}"}, author)["message"]
    assert reply["type"] == "ephemeral" and reply["command"] == "mute", reply
    assert bob in reply["text"] and "muted" in reply["text"], reply["text"]
    ws, hello = server.connect_socket(author)
    ws.close()
    assert [m["target"]["id"] for m in hello["me"]["mutes"]] == [bob]
    reply = ch.send_message({"text": f"/unmute {bob}"}, author)["message"]
    assert reply["type"] == "ephemeral" and reply["command"] == "unmute", reply
    assert bob in reply["text"] and "unmuted" in reply["text"]
    ws, hello = server.connect_socket(author)
    ws.close()
    assert hello["me"]["mutes"] == []
    assert stored_ids(ch) == []


def test_mute_with_a_user_token(server, scene):
    ch, author, bob = scene["channel"], scene["author"], scene["bob"]
    r = send_as(server, author, ch, f"/mute @{bob}")
    assert r.status_code in (200, 201), r.text
    assert r.json()["message"]["type"] == "ephemeral"
    ws, hello = server.connect_socket(author)
    ws.close()
    assert [m["target"]["id"] for m in hello["me"]["mutes"]] == [bob]


@pytest.mark.parametrize("text", ["/mute", "/mute @", "/ban", "/unban   "])
def test_moderation_commands_need_a_user(scene, text):
    ch = scene["channel"]
    err = refused(lambda: ch.send_message({"text": text}, scene["mod"]))
    assert err.status_code == 400 and err.error_code == 4, (text, str(err))
    assert stored_ids(ch) == []


def test_moderation_commands_on_an_unknown_user(scene):
    ch = scene["channel"]
    err = refused(lambda: ch.send_message({"text": f"/mute @{uid('ghost')}"}, scene["author"]))
    assert err.status_code == 404, str(err)


def test_a_moderator_bans_and_unbans_with_commands(client, server, scene):
    ch, mod, bob = scene["channel"], scene["mod"], scene["bob"]
    r = send_as(server, mod, ch, f"/ban @{bob} spam")
    assert r.status_code in (200, 201), r.text
    reply = r.json()["message"]
    assert reply["type"] == "ephemeral" and reply["command"] == "ban" and reply["args"] == f"@{bob} spam", reply
    assert bob in reply["text"] and "banned" in reply["text"], reply["text"]
    bans = bans_in(client, ch)
    assert [(b["user"]["id"], b["banned_by"]["id"], b.get("reason")) for b in bans] == [(bob, mod, "spam")], bans
    blocked = send_as(server, bob, ch, "let me in")
    assert blocked.status_code == 403 and blocked.json()["code"] == 17, blocked.text
    r = send_as(server, mod, ch, f"/unban @{bob}")
    assert r.status_code in (200, 201), r.text
    assert r.json()["message"]["command"] == "unban" and bob in r.json()["message"]["text"]
    assert bans_in(client, ch) == []
    back = send_as(server, bob, ch, "back again")
    assert back.status_code in (200, 201), back.text
    assert stored_ids(ch) == [back.json()["message"]["id"]]


def test_a_ban_command_bans_in_that_channel_only(client, server, scene):
    ch, mod, bob, author = scene["channel"], scene["mod"], scene["bob"], scene["author"]
    elsewhere = client.channel("messaging", uid("room"), {"members": [author, bob]})
    elsewhere.create(author)
    r = send_as(server, mod, ch, f"/ban @{bob}")
    assert r.status_code in (200, 201), r.text
    assert send_as(server, bob, ch, "here").status_code == 403
    assert send_as(server, bob, elsewhere, "there").status_code in (200, 201)


def test_a_plain_member_may_not_ban_or_unban(client, server, scene):
    ch, author, bob, mod = scene["channel"], scene["author"], scene["bob"], scene["mod"]
    r = send_as(server, author, ch, f"/ban @{bob} spam")
    assert r.status_code == 403 and r.json()["code"] == 17, r.text
    assert ENVELOPE <= set(r.json()), r.text
    assert bans_in(client, ch) == []
    assert send_as(server, bob, ch, "still here").status_code in (200, 201)
    ch.ban_user(bob, banned_by_id=mod)
    r = send_as(server, author, ch, f"/unban @{bob}")
    assert r.status_code == 403 and r.json()["code"] == 17, r.text
    assert len(bans_in(client, ch)) == 1
    # Nothing the refused commands said was stored as a message.
    assert [m["text"] for m in ch.query(messages={"limit": 10})["messages"]] == ["still here"]


def test_server_side_ban_command_acts_for_the_named_moderator(client, scene):
    ch, mod, bob = scene["channel"], scene["mod"], scene["bob"]
    reply = ch.send_message({"text": f"/ban @{bob} spam"}, mod)["message"]
    assert reply["type"] == "ephemeral" and reply["command"] == "ban"
    err = refused(lambda: ch.send_message({"text": "hi"}, bob))
    assert err.status_code == 403 and err.error_code == 17, str(err)
    ch.send_message({"text": f"/unban @{bob}"}, mod)
    ch.send_message({"text": "hi"}, bob)


def test_flag_command(client, own_type):
    own_type(["all", "flag"])
    author, bob = uid("au"), uid("bob")
    client.upsert_users([{"id": author}, {"id": bob}])
    ch = own_type.channel([author, bob], author)
    reply = ch.send_message({"text": f"/flag @{bob} rude"}, author)["message"]
    assert reply["type"] == "ephemeral" and reply["command"] == "flag", reply
    assert bob in reply["text"] and "flag" in reply["text"], reply["text"]
    assert stored_ids(ch) == []
    # The flag exists: removing it succeeds once, then there is none.
    removed = client.unflag_user(bob, user_id=author)
    assert removed["flag"]["target_user"]["id"] == bob
    assert refused(lambda: client.unflag_user(bob, user_id=author)).status_code == 404


def test_flag_is_plain_text_where_not_enabled(scene):
    # messaging's "all" is giphy, ban, unban, mute, unmute: /flag is not among them.
    ch = scene["channel"]
    sent = ch.send_message({"text": f"/flag @{scene['bob']} rude"}, scene["author"])["message"]
    assert sent["type"] == "regular" and sent["text"] == f"/flag @{scene['bob']} rude", sent
    assert stored_ids(ch) == [sent["id"]]


# --- Commands the type does not enable, custom commands --------------------------------------------


def test_commands_not_enabled_are_plain_messages(client, own_type):
    ct = own_type([])
    assert client.get_channel_type(ct)["commands"] == []
    author, bob = uid("au"), uid("bob")
    client.upsert_users([{"id": author}, {"id": bob}])
    ch = own_type.channel([author, bob], author)
    texts = ["/giphy cat", f"/ban @{bob}", f"/mute @{bob}", "/giphy"]
    for text in texts:
        sent = ch.send_message({"text": text}, author)["message"]
        assert sent["type"] == "regular" and sent["text"] == text, sent
        assert not sent.get("attachments"), sent
    assert [m["text"] for m in ch.query(messages={"limit": 10})["messages"]] == texts
    ch.send_message({"text": "after"}, bob)  # bob was not banned by the text


def test_only_enabled_commands_run(client, own_type):
    own_type(["mute"])
    author, bob = uid("au"), uid("bob")
    client.upsert_users([{"id": author}, {"id": bob}])
    ch = own_type.channel([author, bob], author)
    assert ch.send_message({"text": f"/mute @{bob}"}, author)["message"]["type"] == "ephemeral"
    plain = ch.send_message({"text": "/giphy cat"}, author)["message"]
    assert plain["type"] == "regular" and plain["text"] == "/giphy cat"
    assert stored_ids(ch) == [plain["id"]]


def test_text_that_only_looks_like_a_command(scene):
    ch, author = scene["channel"], scene["author"]
    texts = ["hello /giphy cat", " /giphy cat", "/nosuchcommand at all", "/path/to/file"]
    for text in texts:
        sent = ch.send_message({"text": text}, author)["message"]
        assert sent["type"] == "regular" and sent["text"] == text, sent
    assert [m["text"] for m in ch.query(messages={"limit": 10})["messages"]] == texts


def test_a_custom_command_answers_that_its_handler_is_unavailable(client, command, own_type):
    name, _ = command
    ct = own_type(["all", name])
    author = uid("au")
    client.upsert_user({"id": author})
    ch = own_type.channel([author], author)
    err = refused(lambda: ch.send_message({"text": f"/{name} my printer is on fire"}, author))
    assert err.status_code == 400 and err.error_code == 4, str(err)
    assert "custom action handler" in str(err), str(err)
    assert stored_ids(ch) == []
    # Where the type does not list it, it is plain text.
    client.update_channel_type(ct, commands=["all"])
    sent = ch.send_message({"text": f"/{name} my printer is on fire"}, author)["message"]
    assert sent["type"] == "regular" and sent["text"] == f"/{name} my printer is on fire"


def test_a_custom_command_in_an_enabled_set_is_invoked(client, own_type):
    name = cmd_name("fun")
    client.create_command({"name": name, "description": "Fun", "set": "fun_set"})
    try:
        own_type(["fun_set"])
        author = uid("au")
        client.upsert_user({"id": author})
        ch = own_type.channel([author], author)
        err = refused(lambda: ch.send_message({"text": f"/{name} now"}, author))
        assert err.status_code == 400 and "custom action handler" in str(err), str(err)
    finally:
        client.delete_command(name)


# --- Who may manage commands -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("GET", "/commands", None),
        ("POST", "/commands", {"name": "fromclient", "description": "x"}),
        ("GET", "/commands/giphy", None),
        ("PUT", "/commands/giphy", {"description": "x"}),
        ("DELETE", "/commands/giphy", None),
    ],
)
def test_commands_are_server_side_only(server, client, method, path, body):
    user = uid("u")
    client.upsert_user({"id": user})
    r = server.request(method, path, token=server.user_token(user), json=body)
    assert r.status_code in (401, 403), (method, path, r.status_code, r.text)
    assert ENVELOPE <= set(r.json()), r.text
    assert "fromclient" not in [c["name"] for c in client.list_commands()["commands"]]


# --- A refused send keeps its preview; a taken id is refused up front ------------------------------


def test_a_refused_send_leaves_the_preview(client, scene):
    ch, author, mod = scene["channel"], scene["author"], scene["mod"]
    preview = ch.send_message({"text": "/giphy cat"}, author)["message"]
    ch.ban_user(author, banned_by_id=mod)
    err = refused(lambda: client.run_message_action(preview["id"], {"form_data": {"image_action": "send"}, "user_id": author}))
    assert err.status_code == 403 and err.error_code == 17, str(err)
    ch.unban_user(author)
    # The refused request changed nothing: the preview can still be sent.
    sent = client.run_message_action(preview["id"], {"form_data": {"image_action": "send"}, "user_id": author})["message"]
    assert sent["id"] == preview["id"] and sent["command"] == "giphy"


def test_giphy_with_a_taken_id_is_refused(client, scene):
    ch, author = scene["channel"], scene["author"]
    taken = str(uuid.uuid4())
    ch.send_message({"id": taken, "text": "original"}, author)
    # As any send with a taken id: refused up front.
    err = refused(lambda: ch.send_message({"id": taken, "text": "/giphy cat"}, author))
    assert err.status_code == 400 and err.error_code == 4, str(err)
    assert client.get_message(taken)["message"]["text"] == "original"
