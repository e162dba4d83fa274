"""Message translation through the official Python SDK, with chat-local's Amazon Translate
adapter (aws-sdk-translate) pointed at a stand-in that speaks TranslateText's wire protocol on
loopback (moto has no Translate)."""

import shutil
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import cbor2
import pytest
from conftest import LocalServer, free_port
from stream_chat.base.exceptions import StreamAPIException


class FakeTranslate(BaseHTTPRequestHandler):
    """Amazon Translate's TranslateText as the AWS SDK for Rust calls it (Smithy RPC v2 CBOR):
    answers `[<target>] <text>`, detecting `en` when the source is `auto`."""

    def do_POST(self):
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        if not self.path.endswith("/operation/TranslateText"):
            self.send_response(404)
            self.end_headers()
            return
        body = cbor2.loads(raw)
        source = body["SourceLanguageCode"]
        data = cbor2.dumps(
            {
                "TranslatedText": f"[{body['TargetLanguageCode']}] {body['Text']}",
                "SourceLanguageCode": "en" if source == "auto" else source,
                "TargetLanguageCode": body["TargetLanguageCode"],
            }
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/cbor")
        self.send_header("smithy-protocol", "rpc-v2-cbor")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def translating():
    port = free_port()
    httpd = HTTPServer(("127.0.0.1", port), FakeTranslate)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    data_dir = tempfile.mkdtemp(prefix="chat-local-translate-")
    env = {
        "CHAT_TRANSLATOR": "amazon",
        "AWS_ENDPOINT_URL_TRANSLATE": f"http://127.0.0.1:{port}",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    srv = LocalServer(data_dir, "trkey", "trsecret-" + uuid.uuid4().hex, env=env).start()
    yield srv
    srv.stop()
    httpd.shutdown()
    shutil.rmtree(data_dir, ignore_errors=True)


def uid(prefix="u"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_translate_message(translating):
    client = translating.client()
    author = uid("a")
    client.upsert_users([{"id": author}])
    ch = client.channel("messaging", uid("tr"), {"members": [author]})
    ch.create(author)
    m = ch.send_message({"text": "Hello"}, author)["message"]
    r = client.translate_message(m["id"], "fr")
    assert r["message"]["i18n"] == {"fr_text": "[fr] Hello", "en_text": "Hello", "language": "en"}
    r = client.translate_message(m["id"], "it")
    assert r["message"]["i18n"]["it_text"] == "[it] Hello" and r["message"]["i18n"]["fr_text"] == "[fr] Hello"
    assert client.get_message(m["id"])["message"]["i18n"]["it_text"] == "[it] Hello"
    with pytest.raises(StreamAPIException):
        client.translate_message(m["id"], "xx")
    # an edit drops the old translations
    r = client.update_message({"id": m["id"], "text": "Bye"})
    assert "i18n" not in r["message"]


def test_auto_translation(translating):
    client = translating.client()
    en, fr = uid("en"), uid("fr")
    client.upsert_users([{"id": en, "language": "en"}, {"id": fr, "language": "fr"}])
    ch = client.channel("messaging", uid("auto"), {"members": [en, fr], "auto_translation_enabled": True})
    ch.create(en)
    m = ch.send_message({"text": "Good morning"}, en)["message"]
    assert m["i18n"]["fr_text"] == "[fr] Good morning" and m["i18n"]["language"] == "en"
    ch.update_partial(to_set={"auto_translation_language": "de"})
    m = ch.send_message({"text": "Later"}, fr)["message"]
    assert m["i18n"]["de_text"] == "[de] Later" and m["i18n"]["language"] == "fr"
    edited = client.update_message({"id": m["id"], "text": "Much later", "user_id": fr})["message"]
    assert edited["i18n"]["de_text"] == "[de] Much later"


def test_without_a_translator_the_endpoint_says_so(client):
    author = uid("a")
    client.upsert_users([{"id": author}])
    ch = client.channel("messaging", uid("tr"), {"members": [author]})
    ch.create(author)
    m = ch.send_message({"text": "Hello"}, author)["message"]
    with pytest.raises(StreamAPIException) as err:
        client.translate_message(m["id"], "fr")
    assert "not configured" in str(err.value)
