"""The official async Python client (aiohttp): it sends a JSON body on every DELETE, needs
`Content-Type: application/json` on every reply (errors included), and builds paths from the
root of the base URL."""

import asyncio
import uuid

import pytest
from stream_chat.async_chat import StreamChatAsync
from stream_chat.base.exceptions import StreamAPIException


def run(coro):
    return asyncio.run(coro)


def test_async_client_round_trip(server):
    async def scenario():
        async with StreamChatAsync(api_key=server.api_key, api_secret=server.api_secret, base_url=server.url, timeout=10) as client:
            uid = "async-" + uuid.uuid4().hex[:8]
            resp = await client.upsert_user({"id": uid, "name": "Async"})
            assert resp["users"][uid]["name"] == "Async"
            found = await client.query_users({"id": uid})
            assert [u["id"] for u in found["users"]] == [uid]
            app = await client.get_app_settings()
            assert "app" in app
            deleted = await client.delete_user(uid)
            assert deleted["user"]["deleted_at"]
            with pytest.raises(StreamAPIException) as err:
                await client.get_channel_type("no-such-type")
            assert err.value.error_code == 16

    run(scenario())


def test_wrong_method_answers_with_the_envelope(server):
    resp = server.request("PUT", "/app", token=None)
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/json"
    assert resp.json()["code"] == 16
