"""Link previews, black-box: `GET /og` and URL enrichment of sent messages read Open Graph,
Twitter-card, `<title>` and oEmbed metadata from pages served on loopback; images preview as
images; redirects are followed (at most five), slow, huge and non-HTML pages are handled; the
SSRF guard refuses internal addresses (written, resolved or redirected to) before connecting
unless `CHAT_URL_PREVIEW_ALLOW` lists them; `skip_enrich_url`, an attached preview, livestream
and `url_enrichment: false` send no preview; `async_url_enrich_enabled` adds it later with
`message.updated`. Private chat-locals: one allowed to reach 127.0.0.1, one without the
variable, one in async mode."""

import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest

from conftest import LocalServer, free_port, read_until

ENVELOPE_FIELDS = {"code", "message", "StatusCode", "duration", "more_info"}
# What an error message must never show: store keys and Rust internals.
LEAKS = ("#", "app/", "storage failure", "PreviewError", "Refused(", "Unavailable(", "hyper::", "Error {", "serde")
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
)


def uid(prefix="lp"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def page(*tags, body="<p>hello</p>"):
    return f"<!doctype html><html><head>{''.join(tags)}</head><body>{body}</body></html>".encode()


def meta(key, content, attr="property"):
    return f'<meta {attr}="{key}" content="{content}">'


class Site:
    """Pages on 127.0.0.1 for the previews to fetch; records every request's path. `?delay=s`
    holds any answer for `s` seconds."""

    def __init__(self):
        self.requests, self.stop, self.other, outer = [], threading.Event(), None, self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests.append(self.path)
                parsed = urllib.parse.urlsplit(self.path)
                outer.stop.wait(float(urllib.parse.parse_qs(parsed.query).get("delay", ["0"])[0]))
                status, headers, body = outer.route(parsed.path)
                try:
                    self.send_response(status)
                    for k, v in {**headers, "Content-Length": str(len(body))}.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the preview stopped reading (size cap, time limit)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = b = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        og = [meta("og:title", "Harbour lights"), meta("og:description", "Boats at dusk."),
              meta("og:image", "/img/cover.png"), meta("og:site_name", "Loopback Gazette"),
              meta("og:url", f"{b}/canonical/harbour")]
        oembed = {"version": "1.0", "type": "rich", "title": "Embedded talk", "thumbnail_url": f"{b}/thumb.jpg",
                  "provider_name": "LoopTube", "author_name": "Ada"}
        self.pages = {
            # Open Graph wins over <title> and Twitter tags.
            "/article": page("<title>Plain</title>", meta("twitter:title", "Tweet", "name"), *og),
            "/twitter": page(meta("twitter:card", "summary", "name"), meta("twitter:title", "Tweeted", "name"),
                             meta("twitter:description", "Said briefly.", "name"), meta("twitter:image", f"{b}/tw.png", "name")),
            "/titled": page("<title>  Just a title </title>"),
            "/oembed-page": page('<link rel="alternate" type="application/json+oembed" href="/oembed.json?id=7">'),
            "/oembed.json": ("application/json", json.dumps(oembed).encode()),
            "/video": page(meta("og:type", "video.other"), meta("og:title", "Launch"),
                           meta("og:image", f"{b}/poster.jpg"), meta("og:video", f"{b}/launch.mp4")),
            "/pic.png": ("image/png", PNG),
            "/slow": page(*og),
            "/huge": page(*og, body="<p>" + "padding " * 250_000 + "</p>"),  # 2 MB
            "/doc.pdf": ("application/pdf", b"%PDF-1.4\n" + b"0" * 500),
            "/bare": b"<html><body><p>nothing to say</p></body></html>",
        }

    def route(self, path):
        if path.startswith("/hop/"):  # /hop/<chain>/<n>: n redirects to /titled?from=<chain>
            _, _, chain, n = path.split("/")
            return 302, {"Location": f"/hop/{chain}/{int(n) - 1}" if int(n) > 1 else f"/titled?from={chain}"}, b""
        if path == "/to-other":
            return 302, {"Location": f"http://127.0.0.2:{self.other.port}/article"}, b""
        if path == "/slow":
            self.stop.wait(8)
        entry = self.pages.get(path, ("text/html", b"<title>Not found</title>"))
        kind, body = entry if isinstance(entry, tuple) else ("text/html; charset=utf-8", entry)
        return 200 if path in self.pages else 404, {"Content-Type": kind}, body

    def hits(self, path):
        return sum(1 for p in self.requests if urllib.parse.urlsplit(p).path == path)

    def close(self):
        self.stop.set()
        self.httpd.shutdown()


class Listener:
    """A bare TCP listener that counts the connections it is offered (never answers)."""

    def __init__(self, host):
        self.sock, self.accepted = socket.create_server((host, 0)), 0
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        with contextlib.suppress(OSError):
            while True:
                self.sock.accept()[0].close()
                self.accepted += 1

    def close(self):
        self.sock.close()


def start_chat(prefix, allow):
    """A private chat-local; `allow` is CHAT_URL_PREVIEW_ALLOW, None leaves it out."""
    data_dir = tempfile.mkdtemp(prefix=f"chat-local-{prefix}-")
    srv = LocalServer(data_dir, prefix + uuid.uuid4().hex[:6], prefix + "-secret-" + uuid.uuid4().hex,
                      env=None if allow is None else {"CHAT_URL_PREVIEW_ALLOW": allow})
    saved = os.environ.pop("CHAT_URL_PREVIEW_ALLOW", None)
    try:
        return srv.start()
    finally:
        if saved is not None:
            os.environ["CHAT_URL_PREVIEW_ALLOW"] = saved


def stop_chat(srv):
    srv.stop()
    log = Path(srv.data_dir, "server.log").read_text(errors="replace")
    shutil.rmtree(srv.data_dir, ignore_errors=True)
    assert "panicked" not in log, log[log.index("panicked") - 200:][:4000]


def chat_fixture(prefix, allow):
    @pytest.fixture(scope="module")
    def fixture():
        srv = start_chat(prefix, allow)
        yield srv
        stop_chat(srv)

    return fixture


allowed = chat_fixture("og", "127.0.0.1")  # may reach the loopback site
guarded = chat_fixture("ssrf", None)  # no CHAT_URL_PREVIEW_ALLOW: the SSRF guard alone
deferred = chat_fixture("ogasync", "10.0.0.0/8, 127.0.0.0/31")  # for async_url_enrich_enabled


@pytest.fixture(scope="module")
def site():
    s = Site()
    yield s
    s.close()


@pytest.fixture
def target():
    """A listener on loopback that the guard must never connect to."""
    listener = Listener("127.0.0.1")
    yield listener
    listener.close()


def og(srv, url, token=None):
    """`GET /og` as a user (or with `token`)."""
    return srv.request("GET", "/og", token=token or srv.user_token("previewer"), params={"url": url})


def preview(srv, url):
    r = og(srv, url)
    assert r.status_code == 200 and "duration" in r.json(), (url, r.text)
    return {k: v for k, v in r.json().items() if k != "duration"}


def assert_error(resp, status, code, field=None):
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert ENVELOPE_FIELDS <= set(body), body
    assert body["code"] == code and body["StatusCode"] == status, body
    for leak in LEAKS:
        assert leak not in body["message"], f"error message leaks {leak!r}: {body['message']}"
    assert not re.search(r"\b(pk|sk)\b", body["message"]), f"error message names a store key: {body['message']}"
    if field:
        assert field in body.get("exception_fields", {}), body
    return body


def new_channel(srv, ctype="messaging"):
    client, user = srv.client(), uid("author")
    client.upsert_user({"id": user})
    ch = client.channel(ctype, uid("ch"), {"members": [user]})
    ch.create(user)
    return client, ch, user


# --- GET /og ------------------------------------------------------------------------------


def test_open_graph_page(allowed, site):
    url = f"{site.base}/article"
    expected = {
        "type": "article", "author_name": "Loopback Gazette", "title": "Harbour lights",
        "title_link": f"{site.base}/canonical/harbour", "text": "Boats at dusk.",
        "image_url": f"{site.base}/img/cover.png", "thumb_url": f"{site.base}/img/cover.png", "og_scrape_url": url,
    }
    assert preview(allowed, url) == expected
    r = og(allowed, url, token=jwt.encode({"server": True}, allowed.api_secret, algorithm="HS256"))
    assert r.status_code == 200 and r.json()["title"] == "Harbour lights", r.text
    assert_error(allowed.request("GET", "/og", auth_type="anonymous", params={"url": url}), 403, 17)
    assert_error(allowed.request("GET", "/og", token=allowed.user_token("previewer")), 400, 4)
    assert_error(og(allowed, ""), 400, 4)


def test_twitter_title_and_oembed_pages(allowed, site):
    b = site.base
    assert preview(allowed, f"{b}/twitter") == {
        "type": "article", "title": "Tweeted", "text": "Said briefly.", "title_link": f"{b}/twitter",
        "image_url": f"{b}/tw.png", "thumb_url": f"{b}/tw.png", "og_scrape_url": f"{b}/twitter",
    }
    assert preview(allowed, f"{b}/titled") == {
        "type": "article", "title": "Just a title", "title_link": f"{b}/titled", "og_scrape_url": f"{b}/titled",
    }
    embedded = preview(allowed, f"{b}/oembed-page")
    assert site.hits("/oembed.json") >= 1
    assert embedded["title"] == "Embedded talk", embedded
    assert embedded["image_url"] == embedded["thumb_url"] == f"{b}/thumb.jpg", embedded
    assert embedded["author_name"] == "LoopTube", embedded
    assert embedded["og_scrape_url"] == f"{b}/oembed-page"


def test_video_image_and_huge_pages(allowed, site):
    b = site.base
    video = preview(allowed, f"{b}/video")
    assert video["type"] == "video" and video["asset_url"] == f"{b}/launch.mp4", video
    assert video["title"] == "Launch" and video["image_url"] == f"{b}/poster.jpg", video
    image = preview(allowed, f"{b}/pic.png")
    assert image["type"] == "image" and image["image_url"] == f"{b}/pic.png", image
    assert image["og_scrape_url"] == f"{b}/pic.png" and "asset_url" not in image, image
    huge = preview(allowed, f"{b}/huge")  # 2 MB, its tags at the start
    assert huge["title"] == "Harbour lights" and huge["text"] == "Boats at dusk.", huge


def test_redirects_are_followed_up_to_five(allowed, site):
    for hops in (2, 5):
        url = f"{site.base}/hop/c{hops}/{hops}"
        got = preview(allowed, url)
        assert got["title"] == "Just a title" and got["title_link"] == f"{site.base}/titled?from=c{hops}", got
        assert got["og_scrape_url"] == url
    assert_error(og(allowed, f"{site.base}/hop/c6/6"), 400, 4)
    assert site.hits("/hop/c6/1") == 1 and "/titled?from=c6" not in site.requests, site.requests[-8:]


def test_links_without_a_preview(allowed, site):
    closed = free_port()
    for url in (f"{site.base}/doc.pdf", f"{site.base}/bare", f"{site.base}/missing",
                f"http://127.0.0.1:{closed}/", "ftp://127.0.0.1/file", "not a link"):
        assert_error(og(allowed, url), 400, 4)
    client, ch, user = new_channel(allowed)
    sent = ch.send_message({"text": f"the spec {site.base}/doc.pdf"}, user)["message"]
    assert sent["attachments"] == []


def test_slow_page_gives_up_within_the_time_limit(allowed, site):
    client, ch, user = new_channel(allowed)
    url = f"{site.base}/slow"
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        asked = pool.submit(og, allowed, url)
        sent = pool.submit(ch.send_message, {"text": f"wait for {url}"}, user)
        answer, message = asked.result(), sent.result()["message"]
    assert time.monotonic() - started < 7.5
    assert_error(answer, 400, 4)
    assert message["attachments"] == [] and message["text"] == f"wait for {url}"
    assert client.get_message(message["id"])["message"]["attachments"] == []


# --- SSRF guard -----------------------------------------------------------------------------


def test_guard_refuses_internal_addresses_before_connecting(guarded, site, target):
    for host in (f"127.0.0.1:{target.port}", f"[::1]:{target.port}", "10.1.2.3", "192.168.1.1",
                 "172.16.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "[::ffff:127.0.0.1]"):
        started = time.monotonic()
        assert_error(og(guarded, f"http://{host}/latest/meta-data"), 400, 4, field="url")
        assert time.monotonic() - started < 1, host  # no connection attempt to time out
    mark = uid("guard")
    assert_error(og(guarded, f"{site.base}/article?{mark}"), 400, 4, field="url")
    time.sleep(0.1)
    assert target.accepted == 0 and not [p for p in site.requests if mark in p]


def test_guard_refuses_names_that_resolve_inside(guarded, target):
    r = og(guarded, f"http://localhost:{target.port}/admin")
    time.sleep(0.1)
    assert target.accepted == 0
    # Refused like an address written in the link: a 400 naming the `url` field.
    assert_error(r, 400, 4, field="url")


def test_guard_keeps_messages_without_a_preview(guarded, target):
    _, ch, user = new_channel(guarded)
    for link in (f"http://127.0.0.1:{target.port}/x", f"http://localhost:{target.port}/x", "http://169.254.169.254/"):
        assert ch.send_message({"text": f"look {link}"}, user)["message"]["attachments"] == [], link
    time.sleep(0.1)
    assert target.accepted == 0


def test_redirect_to_an_unlisted_address_is_refused(allowed, site):
    # All of 127.0.0.0/8 is loopback on Linux, where the suite runs.
    site.other = Listener("127.0.0.2")
    try:
        assert_error(og(allowed, f"{site.base}/to-other"), 400, 4, field="url")
        _, ch, user = new_channel(allowed)
        assert ch.send_message({"text": f"{site.base}/to-other"}, user)["message"]["attachments"] == []
        time.sleep(0.1)
        assert site.hits("/to-other") == 2 and site.other.accepted == 0
    finally:
        site.other.close()


def test_a_bad_allow_list_stops_the_server():
    with pytest.raises(RuntimeError, match="exited"):
        start_chat("badallow", "127.0.0.1,not-an-address")


# --- URL enrichment -------------------------------------------------------------------------


def test_sent_message_gets_a_preview_of_its_first_link(allowed, site):
    client, ch, user = new_channel(allowed)
    first, second = f"{site.base}/article", f"{site.base}/video"
    sent = ch.send_message({"text": f"see {first} and {second}"}, user)["message"]
    assert sent["attachments"] == [preview(allowed, first)], sent["attachments"]
    assert client.get_message(sent["id"])["message"]["attachments"] == sent["attachments"]
    state = ch.query(messages={"limit": 5})["messages"]
    assert [m["attachments"] for m in state if m["id"] == sent["id"]] == [sent["attachments"]]
    own = {"type": "file", "asset_url": f"{site.base}/doc.pdf", "title": "spec"}
    sent = ch.send_message({"text": f"{site.base}/pic.png", "attachments": [own]}, user)["message"]
    assert [a.get("og_scrape_url") for a in sent["attachments"]] == [None, f"{site.base}/pic.png"], sent
    assert sent["attachments"][1]["type"] == "image"


def test_messages_that_skip_enrichment(allowed, site):
    client, ch, user = new_channel(allowed)
    url = f"{site.base}/article"
    sent = ch.send_message({"text": f"no preview {url}"}, user, skip_enrich_url=True)["message"]
    assert sent["attachments"] == []
    assert client.get_message(sent["id"])["message"]["attachments"] == []
    before = site.hits("/twitter")
    given = {"type": "article", "title": "Made by the UI", "og_scrape_url": f"{site.base}/twitter"}
    sent = ch.send_message({"text": f"{site.base}/twitter", "attachments": [given]}, user)["message"]
    assert sent["attachments"] == [given] and site.hits("/twitter") == before


def test_edits_follow_the_first_link(allowed, site):
    """An edit that changes the first link replaces its preview; one that drops the link drops
    the preview; `skip_enrich_url` on an edit leaves the attachments as they are; other
    attachments stay."""
    client, ch, user = new_channel(allowed)
    article, video = f"{site.base}/article", f"{site.base}/video"
    own = {"type": "file", "asset_url": f"{site.base}/doc.pdf", "title": "spec"}
    sent = ch.send_message({"text": f"see {article}", "attachments": [own]}, user)["message"]
    assert [a.get("og_scrape_url") for a in sent["attachments"]] == [None, article]
    edited = client.update_message({"id": sent["id"], "text": f"now {video}", "user_id": user,
                                    "attachments": sent["attachments"]})["message"]
    assert [a.get("og_scrape_url") for a in edited["attachments"]] == [None, video], edited["attachments"]
    assert edited["attachments"][1]["type"] == "video"
    partial = client.update_message_partial(sent["id"], {"set": {"text": "no link now"}}, user)["message"]
    assert partial["attachments"] == [own], partial["attachments"]
    kept = client.update_message_partial(sent["id"], {"set": {"text": f"quiet {article}"}}, user,
                                         skip_enrich_url=True)["message"]
    assert kept["attachments"] == [own], kept["attachments"]


def test_types_without_url_enrichment(allowed, site):
    client = allowed.client()
    assert client.get_channel_type("livestream")["url_enrichment"] is False
    name = "noenrich" + uuid.uuid4().hex[:6]
    assert client.create_channel_type({"name": name, "url_enrichment": False})["url_enrichment"] is False
    before = site.hits("/article")
    for ctype in ("livestream", name):
        _, ch, user = new_channel(allowed, ctype)
        assert ch.send_message({"text": f"{site.base}/article"}, user)["message"]["attachments"] == [], ctype
    assert site.hits("/article") == before


# --- async_url_enrich_enabled ---------------------------------------------------------------


def test_async_enrichment_updates_the_message(deferred, site):
    client = deferred.client()
    client.update_app_settings(async_url_enrich_enabled=True)
    assert client.get_app_settings()["app"]["async_url_enrich_enabled"] is True
    _, ch, user = new_channel(deferred)
    watcher = uid("watcher")
    client.upsert_user({"id": watcher})
    ch.add_members([watcher])
    ws, hello = deferred.connect_socket(watcher)
    try:
        r = deferred.request("POST", f"/channels/{ch.channel_type}/{ch.id}/query", token=deferred.user_token(watcher),
                             params={"connection_id": hello["connection_id"]}, json={"watch": True, "state": True})
        assert r.status_code in (200, 201), r.text
        url = f"{site.base}/article?delay=1"  # the page takes a second: the send does not wait
        started = time.monotonic()
        sent = ch.send_message({"text": f"later {url}"}, user)["message"]
        assert time.monotonic() - started < 0.9 and sent["attachments"] == [], sent
        frames = read_until(ws, lambda f: f.get("type") == "message.updated" and f["message"]["id"] == sent["id"], 6)
        updated = [f for f in frames if f.get("type") == "message.updated"]
        assert updated, [f.get("type") for f in frames]
        attachments = updated[-1]["message"]["attachments"]
        assert [a["og_scrape_url"] for a in attachments] == [url] and attachments[0]["title"] == "Harbour lights"
        assert client.get_message(sent["id"])["message"]["attachments"] == attachments
    finally:
        ws.close()
