// The npm client across a chat-local restart: the server closes sockets with 1012 on stop, the
// client reconnects to the next process on the same port and data directory, recovers its
// watched channels, and events flow again.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StreamChat } from 'stream-chat';
import { nextEvent, startServer } from './harness.js';

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-restart-'));
let server;

after(async () => {
  await server?.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

test('the client reconnects after a server restart and hears new messages', async () => {
  const keys = { apiKey: 'restartkey', apiSecret: 'restart-secret-' + Date.now() };
  server = await startServer({ dataDir, ...keys });
  const admin = new StreamChat(keys.apiKey, keys.apiSecret, { baseURL: server.url });
  const [a, b] = ['restart-sender', 'restart-reader'];
  await admin.upsertUsers([{ id: a }, { id: b }]);
  const ch = admin.channel('messaging', 'restart', { members: [a, b], created_by_id: a });
  await ch.create();

  const client = new StreamChat(keys.apiKey, { baseURL: server.url, allowServerSideConnect: true });
  const hello = await client.connectUser({ id: b }, admin.createToken(b));
  const channel = client.channel('messaging', 'restart');
  await channel.watch();

  const offline = nextEvent(client, 'connection.changed', (e) => e.online === false, 20_000);
  const port = server.port;
  await server.stop();
  await offline;
  const recovered = nextEvent(client, 'connection.recovered', () => true, 20_000);
  server = await startServer({ dataDir, port, ...keys });
  await recovered;
  assert.notEqual(client.wsConnection.connectionID, hello.connection_id, 'a new connection');

  // The recovered channel is watched again on the new connection.
  const heard = nextEvent(channel, 'message.new');
  await ch.sendMessage({ text: 'after the restart', user_id: a });
  assert.equal((await heard).message.text, 'after the restart');
  assert.ok(channel.state.messages.some((m) => m.text === 'after the restart'));
  const { users } = await admin.queryUsers({ id: b });
  assert.equal(users[0].online, true);
  await client.disconnectUser();
});
