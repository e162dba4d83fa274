"""WebSocket connections over a chat-local restart: a process that dies leaves no ghost
watchers or presence behind, and the handshake works on the next process."""

import json
import urllib.parse
import uuid

import websocket


def connect(server, user_id):
    ws, hello = server.connect_socket(user_id)
    return ws, hello["connection_id"]


def test_no_ghost_watchers_after_a_crash(restartable):
    restartable.start()
    client = restartable.client()
    uid = "ghost-" + uuid.uuid4().hex[:8]
    client.upsert_users([{"id": uid}])
    ch = client.channel("messaging", "restart-" + uuid.uuid4().hex[:8], {"members": [uid]})
    ch.create(uid)
    ws, conn = connect(restartable, uid)
    r = restartable.request(
        "POST", f"/channels/messaging/{ch.id}/query", token=restartable.user_token(uid), params={"connection_id": conn}, json={"state": True, "watch": True}
    )
    assert r.json()["watcher_count"] == 1
    assert client.query_users({"id": uid})["users"][0]["online"] is True
    # the process dies without closing anything
    restartable.proc.kill()
    restartable.proc.wait()
    restartable.proc = None
    restartable.start()
    client = restartable.client()
    assert client.channel("messaging", ch.id).query()["watcher_count"] == 0
    assert client.query_users({"id": uid})["users"][0]["online"] is False
    # and a client connects again
    ws2, conn2 = connect(restartable, uid)
    assert conn2 != conn
    ws2.send(json.dumps([{"type": "health.check", "client_id": uid + "--x"}]))
    # the ping is answered (other events, such as the user's own presence change, may come first)
    for _ in range(5):
        if json.loads(ws2.recv())["type"] == "health.check":
            break
    else:
        raise AssertionError("the ping was not answered")
    ws2.close()
    ws.close()


def test_refused_connect_gets_an_error_frame_then_close_1000(server):
    query = urllib.parse.urlencode({"json": json.dumps({"user_id": "x"}), "api_key": server.api_key, "authorization": "not-a-jwt", "stream-auth-type": "jwt"})
    ws = websocket.create_connection(server.url.replace("http", "ws", 1) + "/connect?" + query, timeout=5)
    frame = json.loads(ws.recv())
    assert "error" in frame and frame["error"]["StatusCode"] == 401
    opcode, close = ws.recv_data_frame(True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(close.data[:2], "big") == 1000
    ws.close()


def presigned_connect_url(server, user_id, expires=60, secret=None):
    """A SigV4 pre-signed `GET /connect` (botocore's query-string signer), with the app key and
    secret as credentials."""
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = server.url + "/connect?" + urllib.parse.urlencode({"user_id": user_id, "prefetch-on": "none"})
    request = AWSRequest(method="GET", url=url)
    SigV4QueryAuth(Credentials(server.api_key, secret or server.api_secret), "chat", "local", expires=expires).add_auth(request)
    return request.url.replace("http", "ws", 1)


def test_sigv4_presigned_connect(server):
    uid = "sig-" + uuid.uuid4().hex[:8]
    ws = websocket.create_connection(presigned_connect_url(server, uid), timeout=5)
    hello = json.loads(ws.recv())
    assert hello["type"] == "health.check" and hello["me"]["id"] == uid
    ws.close()
    # a wrong secret or a tampered user is refused with an error frame
    for url in (presigned_connect_url(server, uid, secret="wrong"), presigned_connect_url(server, uid).replace(uid, uid + "x")):
        ws = websocket.create_connection(url, timeout=5)
        frame = json.loads(ws.recv())
        assert frame["error"]["StatusCode"] == 401, frame
        ws.close()


def test_sigv4_presigned_connect_expires(server):
    import time

    url = presigned_connect_url(server, "late-" + uuid.uuid4().hex[:8], expires=1)
    time.sleep(2.1)
    ws = websocket.create_connection(url, timeout=5)
    frame = json.loads(ws.recv())
    assert frame["error"]["code"] == 40
    ws.close()


def test_endpoint_discovery(server, client):
    url = client.get("connect/endpoint")["Endpoint"]["Url"]
    assert url == server.url.replace("http", "ws", 1) + "/connect"
    uid = "disc-" + uuid.uuid4().hex[:8]
    ws = websocket.create_connection(presigned_connect_url(server, uid), timeout=5)
    assert json.loads(ws.recv())["me"]["id"] == uid
    ws.close()


def test_prefetch_on_connect(server, client):
    me, other = "pf-" + uuid.uuid4().hex[:8], "pf-" + uuid.uuid4().hex[:8]
    client.upsert_users([{"id": me}, {"id": other}])
    busy = client.channel("messaging", "busy-" + uuid.uuid4().hex[:8], {"members": [me, other]})
    busy.create(other)
    for i in range(25):
        busy.send_message({"text": f"m{i}"}, other)
    quiet = client.channel("messaging", "quiet-" + uuid.uuid4().hex[:8], {"members": [me, other]})
    quiet.create(me)
    quiet.send_message({"text": "mine"}, me)
    query = urllib.parse.urlencode(
        {
            "json": json.dumps({"user_id": me, "user_details": {"id": me}}),
            "api_key": server.api_key,
            "authorization": server.user_token(me),
            "stream-auth-type": "jwt",
            "prefetch-on": "connect",
        }
    )
    ws = websocket.create_connection(server.url.replace("http", "ws", 1) + "/connect?" + query, timeout=5)
    assert json.loads(ws.recv())["type"] == "health.check"
    details = [json.loads(ws.recv()) for _ in range(2)]
    ws.close()
    assert [d["type"] for d in details] == ["CHANNEL_DETAILS", "CHANNEL_DETAILS"]
    assert details[0]["cid"] == busy.cid, "unread channels come first"
    assert len(details[0]["messages"]) == 20 and details[0]["has_more"] is True
    assert details[0]["messages"][-1]["text"] == "m24"
    assert details[0]["read"]["unread_messages"] == 25
    assert details[1]["cid"] == quiet.cid and details[1]["has_more"] is False
    assert len(details[1]["members"]) == 2


def test_longpoll_connect_poll_and_unknown_connection(server, client):
    """`GET /longpoll` as the JS client's fallback calls it: connect, poll, close; an unknown
    connection id is code 46 (the client then connects again)."""
    uid = "lp-" + uuid.uuid4().hex[:8]
    token = server.user_token(uid)
    payload = json.dumps({"user_id": uid, "user_details": {"id": uid}})
    opened = server.request("GET", "/longpoll", token=token, params={"json": payload})
    assert opened.status_code == 200, opened.text
    hello = opened.json()["event"]
    assert hello["type"] == "health.check" and hello["me"]["id"] == uid
    conn = hello["connection_id"]
    # Someone else's token cannot poll this connection.
    other = server.request("GET", "/longpoll", token=server.user_token("intruder"), params={"connection_id": conn})
    assert other.json()["code"] == 46
    client.upsert_user({"id": "lp-friend"})
    ch = client.channel("messaging", "lp-" + uuid.uuid4().hex[:8], {"members": [uid, "lp-friend"]})
    ch.create("lp-friend")
    watched = server.request(
        "POST", f"/channels/messaging/{ch.id}/query", token=token, params={"connection_id": conn}, json={"watch": True}
    )
    assert watched.status_code == 201 or watched.status_code == 200, watched.text
    ch.send_message({"text": "polled"}, "lp-friend")
    events = []
    for _ in range(5):
        polled = server.request("GET", "/longpoll", token=token, params={"connection_id": conn})
        assert polled.status_code == 200, polled.text
        events += polled.json()["events"]
        if any(e["type"] == "message.new" for e in events):
            break
    assert [e["message"]["text"] for e in events if e["type"] == "message.new"] == ["polled"]
    closed = server.request("GET", "/longpoll", token=token, params={"connection_id": conn, "close": "true"})
    assert closed.status_code == 200
    gone = server.request("GET", "/longpoll", token=token, params={"connection_id": conn})
    assert gone.status_code == 400
    assert gone.json()["code"] == 46


def next_message_new(ws):
    while True:
        frame = json.loads(ws.recv())
        if frame.get("type") == "message.new":
            return frame


def test_a_pending_message_reaches_only_its_sender_until_committed(server, client):
    sender, other = "pend-" + uuid.uuid4().hex[:8], "pend-" + uuid.uuid4().hex[:8]
    client.upsert_users([{"id": sender}, {"id": other}])
    ch = client.channel("messaging", "pend-" + uuid.uuid4().hex[:8], {"members": [sender, other]})
    ch.create(sender)
    sockets = {}
    for u in (sender, other):
        ws, hello = server.connect_socket(u)
        sockets[u] = ws
        watched = server.request(
            "POST",
            f"/channels/messaging/{ch.id}/query",
            token=server.user_token(u),
            params={"connection_id": hello["connection_id"]},
            json={"watch": True},
        )
        assert watched.status_code in (200, 201), watched.text
    pending = ch.send_message({"text": "held"}, sender, pending=True)["message"]
    assert next_message_new(sockets[sender])["message"]["id"] == pending["id"]
    ch.send_message({"text": "marker"}, sender)
    assert next_message_new(sockets[other])["message"]["text"] == "marker", "the pending message stayed away"
    client.commit_message(pending["id"])
    assert next_message_new(sockets[other])["message"]["id"] == pending["id"]
    for ws in sockets.values():
        ws.close()
