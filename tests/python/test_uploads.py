"""Uploads, black-box through the official Python SDK (`send_file`, `send_image`, `delete_file`,
`delete_image`) and raw multipart HTTP: the channel routes `/channels/{type}/{id}/file|image`
and the standalone `/uploads/file|image`; signed links (`expires`, `signature`, images' `oh` /
`ow`) served without a token, with safe headers, resized on request (`w`, `h`, `resize`,
`crop`) and refused when tampered with or expired (`cdn_expiration_seconds`); the app's
`file_upload_config` / `image_upload_config`; the channel type's `uploads` feature; who may
upload and delete (server, members, outsiders, guests, anonymous, moderators, admins, grants
taken away); uploads removed with a hard-deleted message or channel; Stream's error envelope,
never showing store keys or Rust type names."""

import json
import re
import struct
import time
import uuid
import zlib
from types import SimpleNamespace

import jwt
import pytest
import requests
from stream_chat.base.exceptions import StreamAPIException

from conftest import private_app

ENVELOPE = {"code", "message", "StatusCode", "duration", "more_info"}
LEAKS = re.compile(r"uploads?#|\bpk\b|\bsk\b|::|UploadRecord|UploadKind|FilePath|ApiError|Some\(|Option<|Vec<")
RED, BLUE = (255, 0, 0), (0, 0, 255)


def uid(prefix="u"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- PNGs in pure Python ---------------------------------------------------------------------


def png(width, height, left=RED, right=None):
    """An 8-bit RGB PNG, its left half `left` and its right half `right` (default `left`)."""
    right = right or left
    row = b"\x00" + b"".join(bytes(left if x < width // 2 else right) for x in range(width))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b"")


def png_size(body):
    """(width, height) from a PNG's IHDR."""
    assert body[:8] == b"\x89PNG\r\n\x1a\n", body[:16]
    return struct.unpack(">II", body[16:24])


def png_pixel(body, x, y):
    """The RGB of pixel (x, y) of an 8-bit, non-interlaced RGB or RGBA PNG."""
    width, _ = png_size(body)
    assert body[24] == 8 and body[25] in (2, 6) and body[28] == 0, body[24:29]
    bpp = 3 if body[25] == 2 else 4
    idat, pos = b"", 8
    while pos < len(body):
        size, tag = struct.unpack(">I4s", body[pos : pos + 8])
        if tag == b"IDAT":
            idat += body[pos + 8 : pos + 8 + size]
        pos += 12 + size
    raw, stride = zlib.decompress(idat), width * bpp
    prev = bytearray(stride)
    for r in range(y + 1):
        start = r * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            p = a + b - c
            paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else (b if abs(p - b) <= abs(p - c) else c)
            line[i] = (line[i] + [0, a, b, (a + b) // 2, paeth][kind]) & 0xFF
        prev = line
    return tuple(prev[x * bpp : x * bpp + 3])


def near(pixel, colour):
    return all(abs(p - c) < 40 for p, c in zip(pixel, colour))


# --- raw HTTP ---------------------------------------------------------------------------------


def user_token(c, user_id):
    return jwt.encode({"user_id": user_id}, c.api_secret, algorithm="HS256")


def auth(token):
    """Headers as the client SDKs send them; token None is an anonymous caller."""
    if token is None:
        return {"stream-auth-type": "anonymous"}
    return {"stream-auth-type": "jwt", "Authorization": token}


def upload(c, path, token, name="note.txt", body=b"hello uploads", ctype="text/plain", user=None, **fields):
    """A multipart upload as the SDKs post it (`file` part, `user` as JSON, other fields)."""
    return requests.post(
        c.base_url + path,
        params={"api_key": c.api_key},
        headers=auth(token),
        files={"file": (name, body, ctype)},
        data={"user": json.dumps(user or {}), **fields},
        timeout=10,
    )


def uploaded(c, path, token, **kw):
    r = upload(c, path, token, **kw)
    assert r.status_code == 200, r.text
    return r.json()


def remove(c, path, token, url):
    return requests.delete(c.base_url + path, params={"api_key": c.api_key, "url": url}, headers=auth(token), timeout=10)


def fetch(url, **params):
    """GET a link with no credentials (extra query params appended)."""
    return requests.get(url, params=params, timeout=10)


def refused(resp, status, code=None):
    """The response is Stream's error envelope with `status` (and `code`), showing no internals."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert ENVELOPE <= set(body) and body["StatusCode"] == status, body
    if code is not None:
        assert body["code"] == code, body
    assert not LEAKS.search(resp.text), resp.text
    return body


def sdk_refused(call, status):
    with pytest.raises(StreamAPIException) as err:
        call()
    assert err.value.status_code == status, err.value.response_text
    body = json.loads(err.value.response_text)
    assert ENVELOPE <= set(body) and not LEAKS.search(err.value.response_text), body
    return body


def make_scene(c, channel_type="messaging"):
    """A channel made by `owner` with `member`; `mod` its moderator; `outsider` and `admin`
    (app role admin) not members. `path` is the channel's route."""
    p = SimpleNamespace(**{k: uid(k) for k in ("owner", "member", "mod", "outsider", "admin")})
    c.upsert_users([{"id": p.owner}, {"id": p.member}, {"id": p.mod}, {"id": p.outsider}, {"id": p.admin, "role": "admin"}])
    p.channel = c.channel(channel_type, uid("up"), {"members": [p.owner, p.member]})
    p.channel.create(p.owner)
    p.channel.add_moderators([p.mod])
    p.path = f"/channels/{channel_type}/{p.channel.id}"
    p.tok = lambda who: user_token(c, who)
    return p


@pytest.fixture(scope="module", autouse=True)
def default_upload_configs(client):
    """Other modules share the session's app and may leave upload configs set (test_app.py
    allows only .csv): these tests start from Stream's defaults and put the old ones back."""
    keys = ("file_upload_config", "image_upload_config")
    before = {k: client.get_app_settings()["app"][k] for k in keys}
    client.update_app_settings(**{k: {} for k in keys})
    yield
    client.update_app_settings(**before)


@pytest.fixture
def scene(client):
    return make_scene(client)


def guest_token(c, member_of=None):
    gid = uid("guest")
    r = requests.post(c.base_url + "/guest", params={"api_key": c.api_key}, headers=auth(None), json={"user": {"id": gid}}, timeout=10)
    assert r.status_code in (200, 201), r.text
    if member_of is not None:
        member_of.add_members([gid])
    return r.json()["access_token"]


def capabilities(c, path, token):
    r = requests.post(c.base_url + path + "/query", params={"api_key": c.api_key}, headers=auth(token), json={"state": True}, timeout=10)
    assert r.status_code == 200, r.text
    return set(r.json()["channel"]["own_capabilities"])


# --- upload answers and links -----------------------------------------------------------------


def test_sdk_send_file_answers_a_signed_link_to_the_exact_bytes(client, scene, tmp_path):
    """send_file answers `file` (named after the file, with expires and signature) and
    `duration`; a text file has no thumb_url; the link serves the bytes as text/plain."""
    body = b"plain text \x00\xff bytes"
    src = tmp_path / "notes.txt"
    src.write_bytes(body)
    r = scene.channel.send_file(str(src), "notes.txt", {"id": scene.member}, content_type="text/plain")
    assert "duration" in r and "thumb_url" not in r, r
    assert "/notes.txt?" in r["file"] and "expires=" in r["file"] and "signature=" in r["file"], r
    assert "oh=" not in r["file"], r
    got = fetch(r["file"])
    assert got.status_code == 200 and got.content == body
    assert got.headers["Content-Type"].startswith("text/plain"), got.headers


def test_sdk_send_image_answers_thumb_and_original_size(client, scene, tmp_path):
    """send_image answers `file` and `thumb_url` with oh/ow; the thumbnail fits 300×300."""
    src = tmp_path / "big.png"
    src.write_bytes(png(600, 300))
    r = scene.channel.send_image(str(src), "red dot.png", {"id": scene.member}, content_type="image/png")
    for key in ("file", "thumb_url"):
        assert "/red_dot.png?" in r[key] and "oh=300" in r[key] and "ow=600" in r[key], r
        assert "expires=" in r[key] and "signature=" in r[key], r
    original = fetch(r["file"])
    assert original.status_code == 200 and original.content == src.read_bytes()
    assert original.headers["Content-Type"] == "image/png"
    thumb = fetch(r["thumb_url"])
    assert thumb.status_code == 200 and png_size(thumb.content) == (300, 150)


def test_file_route_gives_raster_images_a_thumb(client, scene):
    """A PNG sent to the file route is recognised: thumb_url and oh/ow come with it."""
    r = uploaded(client, scene.path + "/file", client.auth_token, name="pic.png", body=png(20, 10), ctype="image/png", user={"id": scene.owner})
    assert "oh=10" in r["file"] and "ow=20" in r["file"] and "thumb_url" in r, r


def test_links_carry_safe_headers(client, scene):
    """Served files get nosniff and a sandboxing CSP (an SVG image too); an HTML page is served
    as a download."""
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><script>alert(1)</script></svg>'
    cases = [("/file", "pic.png", "image/png", png(4, 4)), ("/image", "v.svg", "image/svg+xml", svg), ("/file", "page.html", "text/html", b"<script>alert(1)</script>")]
    for route, name, ctype, body in cases:
        link = uploaded(client, scene.path + route, scene.tok(scene.member), name=name, body=body, ctype=ctype)["file"]
        got = fetch(link)
        assert got.status_code == 200 and got.content == body
        assert got.headers["Content-Type"].startswith(ctype), got.headers
        assert got.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in got.headers["Content-Security-Policy"]
    assert got.headers["Content-Disposition"].startswith("attachment"), got.headers


def test_unsafe_file_names_are_made_safe(client, scene):
    """Characters outside letters, digits, `.`, `_`, `-` become `_`; directories are dropped."""
    names = {"my cat (1).txt": "/my_cat__1_.txt?", "../../etc/passwd.txt": "/passwd.txt?", "ünï.txt": "/_n_.txt?"}
    for name, shown in names.items():
        link = uploaded(client, scene.path + "/file", scene.tok(scene.member), name=name)["file"]
        assert shown in link and "/etc/" not in link, (name, link)
        assert fetch(link).status_code == 200


@pytest.mark.parametrize(
    "query,size",
    [
        ({"w": 50, "h": 50}, (50, 25)),  # clip (the default) keeps the aspect ratio
        ({"w": 50, "h": 50, "resize": "clip"}, (50, 25)),
        ({"w": 400, "h": 400, "resize": "clip"}, (200, 100)),  # clip never enlarges
        ({"w": 30, "h": 70, "resize": "scale"}, (30, 70)),
        ({"h": 50, "resize": "scale"}, (100, 50)),  # one side: the other from the aspect
        ({"w": 50, "h": 50, "resize": "crop"}, (50, 50)),
        ({"w": 50, "h": 50, "resize": "fill"}, (50, 50)),
        ({"w": 400, "h": 40, "resize": "fill"}, (400, 40)),
    ],
)
def test_image_links_resize(client, scene, query, size):
    """`w`, `h`, `resize` on an image link answer a PNG of the size the mode implies."""
    link = uploaded(client, scene.path + "/image", scene.tok(scene.member), name="two.png", body=png(200, 100, RED, BLUE), ctype="image/png")["file"]
    got = fetch(link, **query)
    assert got.status_code == 200 and got.headers["Content-Type"] == "image/png", got.text[:200]
    assert png_size(got.content) == size


def test_crop_keeps_the_side_asked_for(client, scene):
    """resize=crop with crop=left keeps the red half, crop=right the blue half."""
    link = uploaded(client, scene.path + "/image", scene.tok(scene.member), name="two.png", body=png(200, 100, RED, BLUE), ctype="image/png")["file"]
    for anchor, colour in (("left", RED), ("right", BLUE), ("top", None), ("bottom", None), ("center", None)):
        got = fetch(link, w=50, h=50, resize="crop", crop=anchor)
        assert got.status_code == 200 and png_size(got.content) == (50, 50), anchor
        if colour:
            assert near(png_pixel(got.content, 25, 25), colour), (anchor, png_pixel(got.content, 25, 25))


@pytest.mark.parametrize("query", [{"w": 0}, {"h": -3}, {"w": "abc"}, {"w": 10, "resize": "zoom"}, {"w": 10, "crop": "middle"}])
def test_bad_resize_values_are_refused(client, scene, query):
    """Out-of-range sizes and unknown modes answer 400 in Stream's envelope."""
    link = uploaded(client, scene.path + "/image", scene.tok(scene.member), name="p.png", body=png(8, 8), ctype="image/png")["file"]
    refused(fetch(link, **query), 400, 4)


def test_tampered_links_are_not_found(client, scene):
    """Another signature, expiry, file name or upload id, or a path escape: 404."""
    link = uploaded(client, scene.path + "/file", scene.tok(scene.member), name="secret.txt")["file"]
    other = uploaded(client, scene.path + "/file", scene.tok(scene.member), name="other.txt")["file"]
    sig = re.search(r"signature=([0-9a-f]+)", link).group(1)
    expires = re.search(r"expires=(\d+)", link).group(1)
    upload_id = re.search(r"/uploads/([^/]+)/", link).group(1)
    tampered = [
        link.replace(sig, sig[:-1] + ("0" if sig[-1] != "0" else "1")),
        link.replace("expires=" + expires, "expires=" + str(int(expires) + 3600)),
        link.replace("/secret.txt?", "/other.txt?"),
        link.replace(upload_id, re.search(r"/uploads/([^/]+)/", other).group(1)),
        link.replace("/uploads/" + upload_id + "/secret.txt", "/uploads/" + upload_id + "/../../server.log"),
        link.split("?")[0],
    ]
    for url in tampered:
        refused(fetch(url), 404)
    assert fetch(link).status_code == 200


def test_upload_sizes_are_echoed_and_checked(client, scene):
    """`upload_sizes` (a JSON array) comes back as given; malformed sizes answer 400."""
    sizes = [{"width": 100, "height": 50, "resize": "crop", "crop": "top"}, {"width": 20, "resize": "fill", "crop": "center"}]
    r = uploaded(client, scene.path + "/image", scene.tok(scene.member), name="s.png", body=png(8, 8), ctype="image/png", upload_sizes=json.dumps(sizes))
    assert r["upload_sizes"] == sizes, r
    for bad in ('{"width": 5}', '[{"resize": "fill"}]', '[{"width": 5000}]', "not json"):
        refused(upload(client, scene.path + "/image", scene.tok(scene.member), name="s.png", body=png(8, 8), ctype="image/png", upload_sizes=bad), 400)


def test_standalone_upload_routes(client, scene):
    """/uploads/file and /uploads/image take the same form, for users and the server."""
    f = uploaded(client, "/uploads/file", scene.tok(scene.outsider), name="a.txt", body=b"standalone")
    assert fetch(f["file"]).content == b"standalone" and "thumb_url" not in f
    i = uploaded(client, "/uploads/image", client.auth_token, name="b.png", body=png(30, 20), ctype="image/png", user={"id": scene.owner})
    assert "oh=20" in i["file"] and "ow=30" in i["file"] and png_size(fetch(i["thumb_url"]).content) == (30, 20)


@pytest.mark.parametrize("route", ["channel", "standalone"])
def test_image_routes_take_only_images(client, scene, route):
    """A PDF, a TIFF, or bytes that only claim image/png are refused on the image route."""
    path = scene.path + "/image" if route == "channel" else "/uploads/image"
    tok = scene.tok(scene.member)
    refused(upload(client, path, tok, name="doc.pdf", body=b"%PDF-1.4 x", ctype="application/pdf"), 400, 4)
    refused(upload(client, path, tok, name="pic.tiff", body=b"II*\x00xxxx", ctype="image/tiff"), 400, 4)
    refused(upload(client, path, tok, name="fake.png", body=b"not an image at all", ctype="image/png"), 400, 4)
    assert upload(client, path.replace("/image", "/file"), tok, name="doc.pdf", body=b"%PDF-1.4 x", ctype="application/pdf").status_code == 200


def test_empty_and_malformed_uploads_are_refused(client, scene):
    """An empty file, a JSON body, a form without a file part or with a non-JSON user: 400."""
    refused(upload(client, scene.path + "/file", scene.tok(scene.member), body=b""), 400, 4)
    for path in (scene.path + "/file", "/uploads/image"):
        r = requests.post(client.base_url + path, params={"api_key": client.api_key}, headers=auth(client.auth_token), json={"file": "x"}, timeout=10)
        refused(r, 400, 4)
    r = requests.post(client.base_url + scene.path + "/file", params={"api_key": client.api_key}, headers=auth(client.auth_token), files={"other": ("a.txt", b"x")}, timeout=10)
    refused(r, 400, 4)
    r = requests.post(
        client.base_url + scene.path + "/file", params={"api_key": client.api_key}, headers=auth(client.auth_token),
        files={"file": ("a.txt", b"x", "text/plain")}, data={"user": "{not json"}, timeout=10,
    )
    refused(r, 400, 4)


# --- app settings -----------------------------------------------------------------------------


def test_upload_configs_allow_and_block_extensions_and_types():
    """file_upload_config / image_upload_config lists are enforced (case-insensitively)."""
    with private_app("upcfg") as c:
        s = make_scene(c)
        tok = s.tok(s.member)
        c.update_app_settings(file_upload_config={"allowed_file_extensions": [".txt", "png"], "blocked_mime_types": ["text/html"]})
        assert upload(c, s.path + "/file", tok, name="A.TXT").status_code == 200
        refused(upload(c, s.path + "/file", tok, name="a.pdf", body=b"%PDF", ctype="application/pdf"), 400, 4)
        refused(upload(c, s.path + "/file", tok, name="noext"), 400, 4)
        refused(upload(c, s.path + "/file", tok, name="page.txt", ctype="text/html"), 400, 4)
        c.update_app_settings(file_upload_config={"blocked_file_extensions": [".exe"], "allowed_mime_types": ["text/plain", "application/x-msdownload"]})
        refused(upload(c, "/uploads/file", tok, name="run.EXE", ctype="application/x-msdownload"), 400, 4)
        refused(upload(c, s.path + "/file", tok, name="a.csv", ctype="text/csv"), 400, 4)
        assert upload(c, s.path + "/file", tok, name="a.log", ctype="text/plain").status_code == 200
        c.update_app_settings(image_upload_config={"blocked_file_extensions": [".gif"], "allowed_mime_types": ["image/png", "image/gif"]})
        gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
        refused(upload(c, s.path + "/image", tok, name="a.gif", body=gif, ctype="image/gif"), 400, 4)
        assert upload(c, s.path + "/image", tok, name="a.png", body=png(2, 2), ctype="image/png").status_code == 200
        # the image config does not apply to the file route
        c.update_app_settings(file_upload_config={})
        assert upload(c, s.path + "/file", tok, name="a.gif", body=gif, ctype="image/gif").status_code == 200


def test_size_limit():
    """size_limit (bytes) refuses larger files with 413 / code 22; 0 is the default; above
    100 MB the setting itself is refused."""
    with private_app("upsize") as c:
        s = make_scene(c)
        tok = s.tok(s.member)
        c.update_app_settings(file_upload_config={"size_limit": 10}, image_upload_config={"size_limit": 100})
        assert upload(c, s.path + "/file", tok, body=b"x" * 10).status_code == 200
        refused(upload(c, s.path + "/file", tok, body=b"x" * 11), 413, 22)
        refused(upload(c, "/uploads/file", tok, body=b"x" * 11), 413, 22)
        refused(upload(c, s.path + "/image", tok, name="p.png", body=png(64, 64, RED, BLUE), ctype="image/png"), 413, 22)
        assert upload(c, s.path + "/image", tok, name="p.png", body=png(1, 1), ctype="image/png").status_code == 200
        c.update_app_settings(file_upload_config={"size_limit": 0})
        assert upload(c, s.path + "/file", tok, body=b"x" * 100_000).status_code == 200
        sdk_refused(lambda: c.update_app_settings(file_upload_config={"size_limit": 100 * 1024 * 1024 + 1}), 400)
        c.update_app_settings(file_upload_config={"size_limit": 100 * 1024 * 1024})


def test_cdn_expiration_seconds_sets_link_lifetime():
    """With cdn_expiration_seconds 1 a link works at once and answers 403 once expired."""
    with private_app("upcdn") as c:
        s = make_scene(c)
        c.update_app_settings(cdn_expiration_seconds=1)
        r = uploaded(c, s.path + "/image", s.tok(s.member), name="p.png", body=png(4, 4), ctype="image/png")
        assert int(re.search(r"expires=(\d+)", r["file"]).group(1)) <= time.time() + 2
        assert fetch(r["file"]).status_code == 200
        sent = s.channel.send_message(
            {"text": "look", "attachments": [{"type": "image", "image_url": r["file"], "thumb_url": r["thumb_url"]}]},
            s.member,
        )["message"]
        time.sleep(2.5)
        refused(fetch(r["file"]), 403)
        refused(fetch(r["thumb_url"]), 403)
        # Reading the message again renews its links (for a day plus the lifetime), as Stream
        # renews its CDN links; links that were never ours are left as they are.
        before = time.time()
        renewed = c.get_message(sent["id"])["message"]["attachments"][0]
        assert renewed["image_url"] != r["file"]
        assert renewed["image_url"].split("&expires=")[0] == r["file"].split("&expires=")[0]
        # Counted from the start of the (UTC) day: the next midnight plus the lifetime, so the
        # link stays cacheable all day (late in the day that is less than an hour away).
        day = 86_400
        expires = int(re.search(r"expires=(\d+)", renewed["image_url"]).group(1))
        assert expires in {(int(t) // day + 1) * day + 1 for t in (before, time.time())}, expires
        ok = fetch(renewed["image_url"])
        assert ok.status_code == 200 and ok.content == png(4, 4)
        assert fetch(renewed["thumb_url"]).status_code == 200
        forged = r["file"].replace("signature=", "signature=0")
        other = s.channel.send_message({"text": "x", "attachments": [{"type": "image", "image_url": forged}]}, s.member)
        assert c.get_message(other["message"]["id"])["message"]["attachments"][0]["image_url"] == forged


def test_channel_type_without_uploads_refuses_them():
    """A channel type created with uploads False refuses uploads (403) and drops upload-file."""
    with private_app("upfeat") as c:
        name = "noup" + uuid.uuid4().hex[:6]
        c.create_channel_type({"name": name, "uploads": False})
        s = make_scene(c, name)
        assert "upload-file" not in capabilities(c, s.path, s.tok(s.member))
        refused(upload(c, s.path + "/file", s.tok(s.member)), 403, 17)
        refused(upload(c, s.path + "/image", c.auth_token, name="p.png", body=png(2, 2), ctype="image/png", user={"id": s.owner}), 403)


# --- who may upload ---------------------------------------------------------------------------


def test_members_have_the_upload_file_capability(client, scene):
    """In messaging a member's own_capabilities include upload-file."""
    assert "upload-file" in capabilities(client, scene.path, scene.tok(scene.member))
    assert "upload-file" in capabilities(client, scene.path, scene.tok(scene.owner))


@pytest.mark.parametrize(
    "kind,status",
    [
        ("server", 200),
        ("owner", 200),
        ("member", 200),
        ("guest member", 200),  # guests in messaging: channel_member's upload-attachment grant
        ("outsider", 403),
        ("guest outsider", 403),
        ("anonymous", 403),
    ],
)
def test_who_may_upload_to_a_messaging_channel(client, scene, kind, status):
    """Server and members may upload; non-members (users or guests) and anonymous may not."""
    tokens = {
        "server": lambda: client.auth_token,
        "owner": lambda: scene.tok(scene.owner),
        "member": lambda: scene.tok(scene.member),
        "guest member": lambda: guest_token(client, scene.channel),
        "outsider": lambda: scene.tok(scene.outsider),
        "guest outsider": lambda: guest_token(client),
        "anonymous": lambda: None,
    }
    token = tokens[kind]()
    for route, kw in (("/file", {}), ("/image", {"name": "p.png", "body": png(2, 2), "ctype": "image/png"})):
        r = upload(client, scene.path + route, token, user={"id": scene.member}, **kw)
        if status == 200:
            assert r.status_code == 200 and "file" in r.json(), r.text
        else:
            refused(r, status, 17)


def test_standalone_uploads_refuse_anonymous_callers(client):
    """/uploads/file and /uploads/image need a user, guest or server token."""
    refused(upload(client, "/uploads/file", None), 403, 17)
    refused(upload(client, "/uploads/image", None, name="p.png", body=png(2, 2), ctype="image/png"), 403, 17)
    assert upload(client, "/uploads/file", guest_token(client)).status_code == 200


def test_removed_grant_refuses_members(client, scene):
    """config_overrides grants with "!upload-attachment" for channel_member refuse a member
    (and drop upload-file); the server may still upload."""
    scene.channel.update_partial(to_set={"config_overrides": {"grants": {"channel_member": ["!upload-attachment"]}}})
    assert "upload-file" not in capabilities(client, scene.path, scene.tok(scene.member))
    refused(upload(client, scene.path + "/file", scene.tok(scene.member)), 403, 17)
    assert upload(client, scene.path + "/file", client.auth_token, user={"id": scene.member}).status_code == 200


# --- deletes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind,status",
    [("uploader", 200), ("other member", 403), ("outsider", 403), ("moderator", 200), ("admin", 200), ("server", 200), ("anonymous", 403)],
)
def test_who_may_delete_a_channel_upload(client, scene, kind, status):
    """The uploader, a channel moderator, an admin and the server may delete; others may not."""
    who = {"uploader": scene.member, "other member": scene.owner, "outsider": scene.outsider, "moderator": scene.mod, "admin": scene.admin}
    token = {"server": client.auth_token, "anonymous": None}[kind] if kind in ("server", "anonymous") else scene.tok(who[kind])
    link = uploaded(client, scene.path + "/file", scene.tok(scene.member))["file"]
    r = remove(client, scene.path + "/file", token, link)
    if status == 200:
        assert r.status_code == 200, r.text
        refused(fetch(link), 404)
    else:
        refused(r, status, 17)
        assert fetch(link).status_code == 200


def test_sdk_delete_file_and_image(client, scene, tmp_path):
    """delete_file / delete_image (server side) remove uploads: their links answer 404."""
    src = tmp_path / "p.png"
    src.write_bytes(png(5, 5))
    f = scene.channel.send_file(str(src), "p.png", {"id": scene.member})["file"]
    i = scene.channel.send_image(str(src), "p.png", {"id": scene.member}, content_type="image/png")
    scene.channel.delete_file(f)
    scene.channel.delete_image(i["file"])
    for link in (f, i["file"], i["thumb_url"]):
        refused(fetch(link), 404)
    assert sdk_refused(lambda: scene.channel.delete_file(f), 404)["code"] == 16


def test_deletes_name_their_own_channel_and_kind(client, scene):
    """A link deleted through another channel, the other kind's route or the standalone route
    is not found (404, code 16); gone once deleted; deleting again is 404 too."""
    other = make_scene(client)
    link = uploaded(client, scene.path + "/image", client.auth_token, name="p.png", body=png(2, 2), ctype="image/png", user={"id": scene.member})["file"]
    refused(remove(client, other.path + "/image", client.auth_token, link), 404, 16)
    refused(remove(client, scene.path + "/file", client.auth_token, link), 404, 16)
    refused(remove(client, "/uploads/image", client.auth_token, link), 404, 16)
    refused(remove(client, scene.path + "/image", client.auth_token, link.replace("/p.png?", "/q.png?")), 404, 16)
    refused(remove(client, scene.path + "/image", client.auth_token, ""), 400, 4)
    assert fetch(link).status_code == 200
    assert remove(client, scene.path + "/image", scene.tok(scene.member), link).status_code == 200
    refused(fetch(link), 404)
    refused(remove(client, scene.path + "/image", scene.tok(scene.member), link), 404, 16)


def test_standalone_delete_only_by_uploader_or_server(client, scene):
    """/uploads/file deletes: another user 403, the uploader and the server 200."""
    mine = uploaded(client, "/uploads/file", scene.tok(scene.member))["file"]
    refused(remove(client, "/uploads/file", scene.tok(scene.owner), mine), 403, 17)
    refused(remove(client, "/uploads/file", scene.tok(scene.admin), mine), 403, 17)
    refused(remove(client, "/uploads/file", None, mine), 403, 17)
    assert remove(client, "/uploads/file", scene.tok(scene.member), mine).status_code == 200
    refused(fetch(mine), 404)
    theirs = uploaded(client, "/uploads/image", scene.tok(scene.owner), name="p.png", body=png(2, 2), ctype="image/png")["file"]
    assert remove(client, "/uploads/image", client.auth_token, theirs).status_code == 200
    refused(fetch(theirs), 404)


def test_server_uploads_belong_to_the_user_named(client, scene):
    """A server upload for `user` is that user's (they may delete it); a user token's `user`
    field names nobody else."""
    theirs = uploaded(client, "/uploads/file", client.auth_token, user={"id": scene.member})["file"]
    assert remove(client, "/uploads/file", scene.tok(scene.member), theirs).status_code == 200
    spoofed = uploaded(client, scene.path + "/file", scene.tok(scene.owner), user={"id": scene.member})["file"]
    refused(remove(client, scene.path + "/file", scene.tok(scene.member), spoofed), 403, 17)
    assert remove(client, scene.path + "/file", scene.tok(scene.owner), spoofed).status_code == 200


# --- clean-up ---------------------------------------------------------------------------------


def test_hard_deleted_message_takes_its_uploads(client, scene):
    """Hard-deleting a message removes the channel's uploads its attachments link to (not
    another channel's); a soft delete keeps them."""
    other = make_scene(client)
    f = uploaded(client, scene.path + "/file", scene.tok(scene.member))["file"]
    i = uploaded(client, scene.path + "/image", scene.tok(scene.member), name="p.png", body=png(3, 3), ctype="image/png")
    foreign = uploaded(client, other.path + "/file", scene.tok(other.member))["file"]
    attachments = [{"type": "file", "asset_url": f}, {"type": "image", "image_url": i["file"], "thumb_url": i["thumb_url"]}, {"type": "file", "asset_url": foreign}]
    soft = scene.channel.send_message({"text": "soft", "attachments": attachments}, scene.member)["message"]
    client.delete_message(soft["id"])
    assert all(fetch(u).status_code == 200 for u in (f, i["file"], foreign))
    hard = scene.channel.send_message({"text": "hard", "attachments": attachments}, scene.member)["message"]
    client.delete_message(hard["id"], hard=True)
    for link in (f, i["file"], i["thumb_url"]):
        refused(fetch(link), 404)
    assert fetch(foreign).status_code == 200


def wait_task(client, task_id, seconds=10):
    deadline = time.time() + seconds
    while (task := client.get_task(task_id))["status"] == "pending":
        assert time.time() < deadline, task
        time.sleep(0.05)
    assert task["status"] == "completed", task


@pytest.mark.parametrize("how", ["channel.delete", "delete_channels"])
def test_hard_deleted_channel_takes_its_uploads(client, how):
    """A hard-deleted channel's uploads answer 404; a soft-deleted channel's are kept."""
    soft, hard = make_scene(client), make_scene(client)
    links = {}
    for s in (soft, hard):
        links[s.path] = [
            uploaded(client, s.path + "/file", s.tok(s.member))["file"],
            uploaded(client, s.path + "/image", client.auth_token, name="p.png", body=png(2, 2), ctype="image/png", user={"id": s.owner})["file"],
        ]
    standalone = uploaded(client, "/uploads/file", hard.tok(hard.member))["file"]
    soft.channel.delete()
    if how == "channel.delete":
        hard.channel.delete(hard=True)
    else:
        wait_task(client, client.delete_channels([hard.channel.cid], hard_delete=True)["task_id"])
    assert all(fetch(u).status_code == 200 for u in links[soft.path] + [standalone])
    for link in links[hard.path]:
        refused(fetch(link), 404)


def test_hard_truncation_takes_the_uploads_its_messages_link(client):
    """Truncating with hard_delete removes the channel's uploads that the removed messages link
    to; an upload no message links to stays (until the channel goes)."""
    s = make_scene(client)
    linked = uploaded(client, s.path + "/file", user_token(client, s.member), name="old.txt", body=b"old")
    loose = uploaded(client, s.path + "/file", user_token(client, s.member), name="loose.txt", body=b"loose")
    s.channel.send_message({"text": "old news", "attachments": [{"type": "file", "asset_url": linked["file"]}]}, s.member)
    s.channel.truncate(hard_delete=True)
    refused(fetch(linked["file"]), 404)
    assert fetch(loose["file"]).status_code == 200
