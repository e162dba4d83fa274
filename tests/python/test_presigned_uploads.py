"""Presigned uploads (`POST /uploads/presign`), the way past API Gateway's and Lambda's payload
limits: the upload is checked like a multipart one (permissions, the uploads feature, the
app's upload configs, the declared size) and recorded, and the answer says where the client PUTs
the bytes itself (a presigned S3 URL in AWS; on chat-local, its own upload link, which takes
exactly the declared size and type once signed and never serves downloads) plus the `file`
link, which then serves them like any upload and is deleted like one."""

import requests

from conftest import private_app
from test_uploads import auth, fetch, make_scene, png, png_size, refused, remove, user_token
from test_uploads import default_upload_configs  # noqa: F401  (autouse: Stream's default upload configs)


def presign(c, token, **body):
    return requests.post(
        c.base_url + "/uploads/presign", params={"api_key": c.api_key}, headers=auth(token), json=body, timeout=10
    )


def presigned(c, token, **body):
    r = presign(c, token, **body)
    assert r.status_code == 200, r.text
    return r.json()


def put(answer, body, **headers):
    return requests.put(answer["upload_url"], data=body, headers={**answer["headers"], **headers}, timeout=10)


def test_a_presigned_upload_is_put_then_served_like_any_upload(client):
    s = make_scene(client)
    body = png(30, 20)
    a = presigned(client, user_token(client, s.member), kind="image", name="big pic.png", content_type="image/png",
                  size=len(body), channel_type="messaging", channel_id=s.channel.id)
    assert a["method"] == "PUT" and a["headers"]["Content-Type"] == "image/png"
    assert "/files/uploads/" in a["file"] and "/big_pic.png?" in a["file"] and "thumb_url" in a
    assert fetch(a["file"]).status_code == 404  # nothing yet
    # The upload link is no download link, and a download link takes no upload.
    refused(requests.get(a["upload_url"], timeout=10), 404)
    refused(requests.put(a["file"], data=body, headers=a["headers"], timeout=10), 404)
    refused(put(a, body[:-1], **{"Content-Length": str(len(body) - 1)}), 400)
    refused(put(a, body, **{"Content-Type": "text/html"}), 400)
    forged = dict(a, upload_url=a["upload_url"].replace("size=", "size=9"))
    refused(put(forged, body), 404)
    # A body over the signed size is cut off, and a link that checks out is needed before any
    # body is read.
    refused(put(a, body + b"x" * 10, **{"Content-Length": str(len(body) + 10)}), 400)
    bogus = a["upload_url"].split("?")[0] + "?upload_expires=1&size=1&type=x&upload_signature=00"
    refused(requests.put(bogus, data=b"x" * (8 * 1024 * 1024), timeout=10), 404)
    assert put(a, body).status_code == 200
    got = fetch(a["file"])
    assert got.status_code == 200 and got.content == body and got.headers["content-type"] == "image/png"
    assert png_size(fetch(a["thumb_url"]).content) == (30, 20)
    # Deleted like a multipart upload, by its uploader.
    refused(remove(client, s.path + "/image", user_token(client, s.outsider), a["file"]), 403)
    assert remove(client, s.path + "/image", user_token(client, s.member), a["file"]).status_code == 200
    refused(fetch(a["file"]), 404)


def test_presigning_checks_what_an_upload_checks(client):
    s = make_scene(client)
    channel = {"channel_type": "messaging", "channel_id": s.channel.id}
    file = {"kind": "file", "name": "notes.txt", "content_type": "text/plain", "size": 5}
    guest = requests.post(client.base_url + "/guest", params={"api_key": client.api_key}, headers=auth(None),
                          json={"user": {"id": "guest-" + s.outsider}}, timeout=10).json()["access_token"]
    # A non-member, a guest who is no member, and an anonymous caller may not presign into the
    # channel; a guest may presign a standalone upload, as it may upload one.
    for token in (user_token(client, s.outsider), guest, None):
        refused(presign(client, token, **file, **channel), 403)
    assert presign(client, guest, **file).status_code == 200
    assert presign(client, client.auth_token, **file, **channel, user={"id": s.member}).status_code == 200
    assert presign(client, user_token(client, s.outsider), **file).status_code == 200  # standalone
    refused(presign(client, user_token(client, s.member), **dict(file, size=200 * 1024 * 1024), **channel), 413, 22)
    refused(presign(client, user_token(client, s.member), **dict(file, size=0), **channel), 400)
    refused(presign(client, user_token(client, s.member), **dict(file, kind="image"), **channel), 400)
    refused(presign(client, user_token(client, s.member), **dict(file, name=""), **channel), 400)
    refused(presign(client, user_token(client, s.member), **file, channel_type="messaging"), 400)
    refused(presign(client, user_token(client, s.member), kind="file", name="x.txt"), 400)  # no size


def test_presigning_follows_the_app_upload_config():
    with private_app("presigncfg") as c:
        s = make_scene(c)
        c.update_app_settings(file_upload_config={"allowed_file_extensions": [".csv"], "size_limit": 100})
        tok = user_token(c, s.member)
        channel = {"channel_type": "messaging", "channel_id": s.channel.id}
        refused(presign(c, tok, kind="file", name="a.txt", size=5, **channel), 400)
        refused(presign(c, tok, kind="file", name="a.csv", size=101, **channel), 413)
        a = presigned(c, tok, kind="file", name="a.csv", content_type="text/csv", size=3, **channel)
        assert put(a, b"a,b").status_code == 200
        assert fetch(a["file"]).content == b"a,b"
