"""A message's `html` is its text rendered as Markdown, as Stream fills the field, with nothing
a user typed becoming markup of its own (raw HTML as text, unsafe link targets dropped)."""

import uuid


def test_html_is_the_texts_markdown(client):
    user = f"h-{uuid.uuid4().hex[:8]}"
    client.upsert_user({"id": user})
    ch = client.channel("messaging", f"html-{uuid.uuid4().hex[:8]}", {"members": [user]})
    ch.create(user)
    plain = ch.send_message({"text": "hello"}, user)["message"]
    assert plain["html"] == "<p>hello</p>\n"
    styled = ch.send_message({"text": "**hi** [docs](https://example.com)"}, user)["message"]
    assert styled["html"] == '<p><strong>hi</strong> <a href="https://example.com">docs</a></p>\n'
    hostile = ch.send_message({"text": 'x <img src=x onerror=alert(1)> [y](javascript:alert(1))'}, user)["message"]
    assert "<img" not in hostile["html"] and "javascript:" not in hostile["html"], hostile["html"]
    assert "&lt;img" in hostile["html"]
    # Read back the same; an update renders the new text; a deleted message has none.
    assert client.get_message(plain["id"])["message"]["html"] == "<p>hello</p>\n"
    client.update_message({"id": plain["id"], "text": "_changed_", "user_id": user})
    assert client.get_message(plain["id"])["message"]["html"] == "<p><em>changed</em></p>\n"
    client.delete_message(plain["id"])
    assert client.get_message(plain["id"])["message"]["html"] == ""
