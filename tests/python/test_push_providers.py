"""Push providers, black-box: `POST /push_providers`, `GET /push_providers` and `DELETE
/push_providers/{type}/{name}` through the official Python SDK (upsert, list, a replace keeps
`created_at`, delete, a missing one 404); what is refused (names, unsupported types, APNs
certificates, keys that do not parse, legacy FCM server keys, custom templates, oversized text)
with Stream's error envelope; 25 providers at most; secrets never read back (upsert, list,
GET /app); server-side only (users, guests, anonymous refused); the legacy configs of PATCH /app
(`apn_config`, `firebase_config`, `push_config`, `huawei_config`, `xiaomi_config`) checked the
same way and read back as `push_notifications`; devices naming a provider.

Providers are app-wide state of the session's shared server: every test deletes what it makes
(unique names) and puts the legacy configs back."""

import json
import time
import uuid
from pathlib import Path

import pytest
from stream_chat.base.exceptions import StreamAPIException

import envelope

PUSH_FIXTURES = Path(__file__).resolve().parents[2] / "shared/tests/fixtures/push"
APNS_KEY = (PUSH_FIXTURES / "apns_key.p8").read_text()
FCM_KEY = (PUSH_FIXTURES / "fcm_key.pem").read_text()
# What must never come back: a line of each key's body, and any PEM private key.
KEY_MARKS = (APNS_KEY.splitlines()[1], FCM_KEY.splitlines()[1], "PRIVATE KEY")
SECRET_FIELDS = ("apn_auth_key", "apn_p12_cert", "firebase_credentials", "firebase_server_key", "huawei_app_secret", "xiaomi_app_secret")
LEGACY_KEYS = ("apn_config", "firebase_config", "push_config", "huawei_config", "xiaomi_config")


def uid(prefix="pp"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def credentials(project_id="chat-local-test", client_email=None, private_key=FCM_KEY, **extra):
    """A Firebase service account JSON as the console downloads it."""
    return json.dumps(
        {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": "0123456789abcdef",
            "private_key": private_key,
            "client_email": client_email or f"{uid('sa')}@{project_id}.iam.gserviceaccount.com",
            "client_id": "1234567890",
            **extra,
        }
    )


def apn_provider(name, **fields):
    return {
        "name": name,
        "type": "apn",
        "apn_auth_type": "token",
        "apn_auth_key": APNS_KEY,
        "apn_key_id": "KEYID12345",
        "apn_team_id": "TEAMID1234",
        "apn_topic": "io.example.chat",
        "apn_development": True,
        **fields,
    }


def firebase_provider(name, **fields):
    return {"name": name, "type": "firebase", "firebase_credentials": credentials(), **fields}


def assert_no_secret(doc, where, fields=True):
    """No key material in `doc` (a response's text or JSON); with `fields`, no secret field
    either (a refusal may name the field it refuses, never its value)."""
    dump = doc if isinstance(doc, str) else json.dumps(doc)
    for mark in KEY_MARKS:
        assert mark not in dump, f"{where} shows key material ({mark[:20]}...): {dump[:600]}"
    if fields and not isinstance(doc, str):
        found = [k for k in SECRET_FIELDS if f'"{k}"' in dump]
        assert found == [], f"{where} shows {found}"


refused = envelope.assert_error


def sdk_refused(call, status=400):
    with pytest.raises(StreamAPIException) as e:
        call()
    err = e.value
    assert err.status_code == status, (err.status_code, err.response_text)
    body = json.loads(err.response_text)
    assert envelope.ENVELOPE_FIELDS <= set(body) and body["StatusCode"] == status, body
    envelope.assert_no_leak(body["message"])
    if status == 400:
        assert body["code"] == 4, body
    return body


def listed(client):
    return {(p["type"], p["name"]): p for p in client.list_push_providers()["push_providers"]}


@pytest.fixture
def made(client):
    """Providers a test creates, as (type, name): deleted afterwards."""
    keys = []
    yield keys
    for kind, name in keys:
        try:
            client.delete_push_provider(kind, name)
        except StreamAPIException as e:
            assert e.status_code == 404, e.response_text


def upsert(client, made, provider):
    made.append((provider["type"], provider["name"]))
    return client.upsert_push_provider(provider)["push_provider"]


@pytest.fixture
def legacy_reset(client):
    """Puts the app's legacy push configs back as they were (they are the session server's)."""
    before = client.get_app_settings()["app"]["push_notifications"]
    yield
    client.update_app_settings(
        apn_config={"Disabled": True},
        firebase_config={"Disabled": True},
        huawei_config={"Disabled": True},
        xiaomi_config={"Disabled": True},
        push_config={"version": before["version"], "offline_only": before["offline_only"]},
    )
    after = client.get_app_settings()["app"]["push_notifications"]
    assert after["apn"]["enabled"] is False and after["firebase"]["enabled"] is False, after


# CRUD -----------------------------------------------------------------------------------------


def test_sdk_upsert_list_replace_delete(client, made):
    name = uid("apn")
    created = upsert(client, made, apn_provider(name, description="production iOS"))
    assert created["name"] == name and created["type"] == "apn", created
    assert created["apn_key_id"] == "KEYID12345" and created["apn_team_id"] == "TEAMID1234", created
    assert created["apn_topic"] == "io.example.chat" and created["apn_development"] is True, created
    assert created["description"] == "production iOS" and created["created_at"] and created["updated_at"], created
    assert_no_secret(created, "the upsert answer")

    shown = listed(client)[("apn", name)]
    assert shown["created_at"] == created["created_at"] and shown["apn_key_id"] == "KEYID12345", shown
    assert_no_secret(shown, "the list")

    # The same (type, name) again replaces it, keeping created_at.
    time.sleep(0.01)
    replaced = client.upsert_push_provider(apn_provider(name, apn_key_id="OTHERKEY99", description="rotated"))["push_provider"]
    assert replaced["created_at"] == created["created_at"], (created, replaced)
    assert replaced["updated_at"] >= created["updated_at"] and replaced["apn_key_id"] == "OTHERKEY99", replaced
    assert replaced["description"] == "rotated"
    now = listed(client)
    assert [k for k in now if k == ("apn", name)] == [("apn", name)]
    assert now[("apn", name)]["apn_key_id"] == "OTHERKEY99" and now[("apn", name)]["created_at"] == created["created_at"]

    # The same name with another type is another provider.
    fb = upsert(client, made, firebase_provider(name, firebase_host="https://fcm.example.com"))
    assert fb["type"] == "firebase" and fb["firebase_host"] == "https://fcm.example.com", fb
    assert_no_secret(fb, "the firebase upsert answer")
    assert {("apn", name), ("firebase", name)} <= set(listed(client))

    # Disabled: kept and listed with its reason.
    off = client.upsert_push_provider(
        apn_provider(name, disabled_at="2024-01-01T00:00:00Z", disabled_reason="key rotated")
    )["push_provider"]
    assert off["disabled_at"] and off["disabled_reason"] == "key rotated", off

    deleted = client.delete_push_provider("apn", name)
    assert {k: v for k, v in deleted.items() if k != "duration"} == {}, deleted
    now = listed(client)
    assert ("apn", name) not in now and ("firebase", name) in now
    sdk_refused(lambda: client.delete_push_provider("apn", name), 404)
    client.delete_push_provider("firebase", name)
    assert ("firebase", name) not in listed(client)


def test_delete_refusals(server, client):
    sdk_refused(lambda: client.delete_push_provider("firebase", uid("never")), 404)
    sdk_refused(lambda: client.delete_push_provider("gcm", "whatever"), 400)


# Validation -----------------------------------------------------------------------------------

TOO_LONG_NAME = "n" * 37

REFUSALS = [
    # (provider, words the message names)
    ({"type": "apn", **{k: v for k, v in apn_provider("x").items() if k != "name"}}, "name"),
    (apn_provider(""), "name"),
    (apn_provider(TOO_LONG_NAME), "name"),
    (apn_provider("has space"), "name"),
    (apn_provider("a/b"), "name"),
    (apn_provider("ok", description="d" * 129), "description"),
    (apn_provider("ok", disabled_reason="r" * 256), "disabled_reason"),
    ({"name": "ok", "type": "gcm"}, "type"),
    ({"name": "ok"}, "type"),
    ({"name": "ok", "type": "huawei", "huawei_app_id": "1", "huawei_app_secret": "s"}, "push delivery to huawei is not supported"),
    ({"name": "ok", "type": "xiaomi", "xiaomi_package_name": "p", "xiaomi_app_secret": "s"}, "push delivery to xiaomi is not supported"),
    # APNs: token authentication with a real .p8 key only.
    (apn_provider("ok", apn_auth_type="certificate", apn_p12_cert="MIIcert", apn_auth_key=""), "certificate (p12) authentication is not supported"),
    (apn_provider("ok", apn_auth_type="password"), "apn_auth_type"),
    (apn_provider("ok", apn_auth_key=""), "apn_auth_key"),
    (apn_provider("ok", apn_key_id=""), "apn_key_id"),
    (apn_provider("ok", apn_team_id=""), "apn_team_id"),
    (apn_provider("ok", apn_topic=""), "apn_topic"),
    (apn_provider("ok", apn_auth_key="not-a-key"), "apn_auth_key"),
    (apn_provider("ok", apn_auth_key=FCM_KEY), "apn_auth_key"),  # an RSA key is no .p8
    (apn_provider("ok", apn_host="ftp://apns.example.com"), "apn_host"),
    # Firebase: a service account whose private key is an RSA PEM.
    ({"name": "ok", "type": "firebase", "firebase_server_key": "AAAA-legacy-server-key"}, "firebase_credentials"),
    ({"name": "ok", "type": "firebase"}, "firebase_credentials"),
    (firebase_provider("ok", firebase_credentials="{not json"), "firebase_credentials"),
    (firebase_provider("ok", firebase_credentials=credentials(project_id="")), "firebase_credentials"),
    (firebase_provider("ok", firebase_credentials=credentials(private_key=APNS_KEY)), "firebase_credentials"),
    (firebase_provider("ok", firebase_credentials=credentials(private_key="-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")), "firebase_credentials"),
    (firebase_provider("ok", firebase_host="not a url"), "firebase_host"),
    # Custom templates are not rendered, so they are refused.
    (apn_provider("ok", apn_notification_template='{"aps": {}}'), "custom push templates are not supported"),
    (firebase_provider("ok", firebase_data_template='{"a": "b"}'), "custom push templates are not supported"),
    (firebase_provider("ok", firebase_notification_template='{"title": "t"}'), "custom push templates are not supported"),
    (firebase_provider("ok", firebase_apn_template='{"aps": {}}'), "custom push templates are not supported"),
]


@pytest.mark.parametrize("provider, says", REFUSALS, ids=[f"{i}-{says[:30]}" for i, (_, says) in enumerate(REFUSALS)])
def test_refused_providers(client, made, provider, says):
    provider = dict(provider)
    if provider.get("name") == "ok":
        provider["name"] = uid("bad")
        if provider.get("type") in ("apn", "firebase", "huawei", "xiaomi"):
            made.append((provider["type"], provider["name"]))  # in case it was accepted
    body = sdk_refused(lambda: client.upsert_push_provider(provider))
    assert says in body["message"], body
    assert_no_secret(body, "the refusal", fields=False)
    if provider.get("name"):
        assert (provider.get("type"), provider["name"]) not in listed(client)


def test_refused_without_a_push_provider(server, client):
    for body in ({}, {"push_provider": None}, {"push_provider": "apn"}):
        refused(server.request("POST", "/push_providers", token=client.auth_token, json=body), 400, 4)


def test_an_app_keeps_at_most_25(client, made):
    existing = len(listed(client))
    assert existing < 25, f"{existing} providers are left over by other tests"
    tag = uuid.uuid4().hex[:6]
    names = [f"lim{i:02}-{tag}" for i in range(25 - existing)]
    for i, name in enumerate(names):
        make = apn_provider if i % 2 else firebase_provider
        upsert(client, made, make(name))
    assert len(listed(client)) == 25
    extra = f"lim-extra-{tag}"
    made.append(("apn", extra))
    body = sdk_refused(lambda: client.upsert_push_provider(apn_provider(extra)))
    assert "25" in body["message"], body
    assert len(listed(client)) == 25 and ("apn", extra) not in listed(client)
    # Replacing one of the 25 is no new one.
    client.upsert_push_provider(firebase_provider(names[0], description="replaced at the limit"))
    assert listed(client)[("firebase", names[0])]["description"] == "replaced at the limit"
    # Deleting one makes room.
    client.delete_push_provider("firebase", names[0])
    client.upsert_push_provider(apn_provider(extra))
    assert ("apn", extra) in listed(client) and len(listed(client)) == 25


# Secrets --------------------------------------------------------------------------------------


def test_secrets_are_never_read_back(server, client, made, legacy_reset, user_id):
    apn = upsert(client, made, apn_provider(uid("sec-apn")))
    fb = upsert(client, made, firebase_provider(uid("sec-fb")))
    assert_no_secret(apn, "the APNs upsert answer")
    assert_no_secret(fb, "the Firebase upsert answer")
    raw = server.request("GET", "/push_providers", token=client.auth_token)
    assert raw.status_code == 200, raw.text
    assert_no_secret(raw.text, "GET /push_providers (raw)")
    assert_no_secret(raw.json(), "GET /push_providers")
    assert {(apn["type"], apn["name"]), (fb["type"], fb["name"])} <= {(p["type"], p["name"]) for p in raw.json()["push_providers"]}

    client.update_app_settings(
        apn_config={"auth_type": "token", "auth_key": APNS_KEY, "key_id": "k", "team_id": "t", "bundle_id": "b"},
        firebase_config={"credentials_json": credentials()},
    )
    app = server.request("GET", "/app", token=client.auth_token)
    assert app.status_code == 200, app.text
    assert_no_secret(app.text, "server-side GET /app (raw)")
    assert_no_secret(app.json(), "server-side GET /app")
    shown = {(p["type"], p["name"]) for p in app.json()["app"]["push_notifications"]["providers"]}
    assert {(apn["type"], apn["name"]), (fb["type"], fb["name"])} <= shown
    client.upsert_user({"id": user_id})
    for caller in ({"token": server.user_token(user_id)}, {"auth_type": "anonymous"}):
        resp = server.request("GET", "/app", **caller)
        assert resp.status_code == 200, resp.text
        assert_no_secret(resp.text, f"client-side GET /app ({caller})")


# Server-side only -----------------------------------------------------------------------------


def guest_token(server):
    r = server.request("POST", "/guest", auth_type="anonymous", json={"user": {"id": uid("guest")}})
    assert r.status_code in (200, 201), r.text
    return r.json()["access_token"]


def test_server_side_only(server, client, made):
    me, other = uid("me"), uid("other")
    client.upsert_users([{"id": me}, {"id": other}])
    name = uid("perm")
    upsert(client, made, firebase_provider(name))
    callers = {
        "user": {"token": server.user_token(me)},
        "other user": {"token": server.user_token(other)},
        "guest": {"token": guest_token(server)},
        "anonymous": {"auth_type": "anonymous"},
    }
    for who, caller in callers.items():
        fresh = uid("perm")
        made.append(("apn", fresh))
        body = refused(server.request("POST", "/push_providers", json={"push_provider": apn_provider(fresh)}, **caller), 403, 17)
        assert_no_secret(body, who, fields=False)
        # Replacing the existing one is refused too.
        refused(
            server.request("POST", "/push_providers", json={"push_provider": firebase_provider(name, description=who)}, **caller), 403, 17
        )
        refused(server.request("GET", "/push_providers", **caller), 403, 17)
        refused(server.request("DELETE", f"/push_providers/firebase/{name}", **caller), 403, 17)
        refused(server.request("DELETE", f"/push_providers/apn/{uid('none')}", **caller), 403, 17)
        now = listed(client)
        assert ("apn", fresh) not in now, who
        assert ("firebase", name) in now and "description" not in now[("firebase", name)], (who, now[("firebase", name)])
    # The server may.
    ok = server.request("GET", "/push_providers", token=client.auth_token)
    assert ok.status_code == 200 and ("firebase", name) in {(p["type"], p["name"]) for p in ok.json()["push_providers"]}
    assert server.request("DELETE", f"/push_providers/firebase/{name}", token=client.auth_token).status_code == 200


# Legacy configs of PATCH /app -----------------------------------------------------------------


def push_notifications(client):
    app = client.get_app_settings()["app"]
    hidden = [k for k in LEGACY_KEYS if k in app]
    assert hidden == [], f"GET /app still returns {hidden}"
    return app["push_notifications"]


def test_legacy_configs_read_back_as_push_notifications(client, made, legacy_reset):
    named = upsert(client, made, apn_provider(uid("legacy-named")))
    client.update_app_settings(
        apn_config={
            "auth_type": "token", "auth_key": APNS_KEY, "key_id": "KEY1", "team_id": "TEAM1",
            "bundle_id": "io.example.legacy", "development": True, "host": "https://apns.example.com",
        },
        firebase_config={"credentials_json": credentials()},
        push_config={"version": "v2", "offline_only": True},
    )
    pn = push_notifications(client)
    assert pn["version"] == "v2" and pn["offline_only"] is True, pn
    assert pn["apn"] == {
        "enabled": True, "development": True, "auth_type": "token", "bundle_id": "io.example.legacy",
        "key_id": "KEY1", "team_id": "TEAM1", "host": "https://apns.example.com",
    }, pn["apn"]
    assert pn["firebase"] == {"enabled": True}, pn
    assert pn["huawei"] == {"enabled": False} and pn["xiaomi"] == {"enabled": False}, pn
    assert (named["type"], named["name"]) in {(p["type"], p["name"]) for p in pn["providers"]}, pn["providers"]
    assert_no_secret(pn, "push_notifications")

    # Refused like providers; nothing changes.
    for settings, says in [
        ({"apn_config": {"auth_type": "token", "auth_key": "fake-key", "key_id": "k", "team_id": "t", "bundle_id": "b"}}, "apn_auth_key"),
        ({"apn_config": {"auth_type": "token", "auth_key": APNS_KEY, "key_id": "k", "team_id": "t"}}, "apn_topic"),
        ({"apn_config": {"auth_type": "certificate", "p12_cert": "MIIcert"}}, "certificate"),
        ({"apn_config": {"auth_type": "token", "auth_key": APNS_KEY, "key_id": "k", "team_id": "t", "bundle_id": "b", "notification_template": "{}"}}, "templates"),
        ({"firebase_config": {"server_key": "AAAA-legacy-server-key"}}, "firebase_credentials"),
        ({"firebase_config": {"credentials_json": "fcm-credentials-fake"}}, "firebase_credentials"),
        ({"firebase_config": {"credentials_json": credentials(private_key=APNS_KEY)}}, "firebase_credentials"),
        ({"firebase_config": {"credentials_json": credentials(), "data_template": "{}"}}, "templates"),
        ({"push_config": {"version": "v9"}}, "push_config"),
        ({"push_config": {"version": "v1"}}, "v1"),
        ({"huawei_config": {"id": "app", "secret": "s"}}, "huawei"),
        ({"xiaomi_config": {"package_name": "p", "secret": "s"}}, "xiaomi"),
    ]:
        body = sdk_refused(lambda: client.update_app_settings(**settings))
        assert says in body["message"], (settings, body)
        assert_no_secret(body, f"the refusal of {settings}", fields=False)
        assert push_notifications(client) == pn, settings

    # {"Disabled": true} turns each off.
    client.update_app_settings(huawei_config={"Disabled": True}, xiaomi_config={"Disabled": True})
    client.update_app_settings(apn_config={"Disabled": True})
    pn = push_notifications(client)
    assert pn["apn"]["enabled"] is False and "key_id" not in pn["apn"] and pn["firebase"]["enabled"] is True, pn
    client.update_app_settings(firebase_config={"Disabled": True}, push_config={"version": "v3", "offline_only": False})
    pn = push_notifications(client)
    assert pn["firebase"] == {"enabled": False} and pn["version"] == "v3" and pn["offline_only"] is False, pn


# Devices naming a provider --------------------------------------------------------------------


def test_devices_name_a_provider(server, client, made):
    user = uid("dev")
    client.upsert_user({"id": user})
    fb, apn = uid("fb"), uid("apn")
    upsert(client, made, firebase_provider(fb))
    upsert(client, made, apn_provider(apn))
    client.add_device("fcm-" + user, "firebase", user, push_provider_name=fb)
    client.add_device("apn-" + user, "apn", user, push_provider_name=apn)
    r = server.request(
        "POST", "/devices", token=server.user_token(user), json={"id": "own-" + user, "push_provider": "firebase", "push_provider_name": fb}
    )
    assert r.status_code in (200, 201), r.text
    devices = {d["id"]: d for d in client.get_devices(user)["devices"]}
    assert devices["fcm-" + user]["push_provider_name"] == fb, devices
    assert devices["apn-" + user]["push_provider_name"] == apn, devices
    assert devices["own-" + user]["push_provider_name"] == fb, devices

    # A name that is no provider, or a provider of another type: refused.
    missing = uid("missing")
    body = sdk_refused(lambda: client.add_device("x-" + user, "firebase", user, push_provider_name=missing))
    assert missing in body["message"], body
    sdk_refused(lambda: client.add_device("y-" + user, "apn", user, push_provider_name=fb))
    r = server.request(
        "POST", "/devices", token=server.user_token(user), json={"id": "z-" + user, "push_provider": "firebase", "push_provider_name": missing}
    )
    refused(r, 400, 4)
    assert set(d["id"] for d in client.get_devices(user)["devices"]) == {"fcm-" + user, "apn-" + user, "own-" + user}
