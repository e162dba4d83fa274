// Push devices from the official npm stream-chat client, user-side as mobile apps call them at
// login: `addDevice` / `getDevices` / `removeDevice` manage the user's own devices (another
// user's are refused), `setLocalDevice` before connecting registers the device with the
// WebSocket connect, and the connection's `me` lists the user's devices.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamChat } from 'stream-chat';
import { connectAs, uid, useServer } from './harness.js';

let server;
let admin;
useServer((s, c) => {
  server = s;
  admin = c;
});

const connected = [];
after(async () => {
  for (const client of connected) await client.disconnectUser();
});

async function connect(id) {
  const client = await connectAs(server, admin, id);
  connected.push(client);
  return client;
}

test('a user adds, lists and removes their own devices; not another user\'s', async () => {
  const [a, b] = [uid('dev-a'), uid('dev-b')];
  await admin.upsertUsers([{ id: a }, { id: b }]);
  const alice = await connect(a);
  const bob = await connect(b);
  await alice.addDevice(`fcm-${a}`, 'firebase');
  await alice.addDevice(`apn-${a}`, 'apn');
  const { devices } = await alice.getDevices();
  assert.deepEqual(devices.map((d) => [d.id, d.push_provider, d.user_id]), [
    [`fcm-${a}`, 'firebase', a],
    [`apn-${a}`, 'apn', a],
  ]);
  await assert.rejects(bob.getDevices(a), (e) => e.status === 403);
  await assert.rejects(bob.removeDevice(`fcm-${a}`, a), (e) => e.status === 403);
  await assert.rejects(bob.addDevice('x', 'apn', a), (e) => e.status === 403);
  await assert.rejects(alice.addDevice('x', 'gcm'), (e) => e.status === 400);
  await alice.removeDevice(`fcm-${a}`);
  assert.deepEqual((await alice.getDevices()).devices.map((d) => d.id), [`apn-${a}`]);
  // The server names the user.
  assert.deepEqual((await admin.getDevices(a)).devices.map((d) => d.id), [`apn-${a}`]);
});

test('setLocalDevice registers the device with the connect, and me lists it', async () => {
  const id = uid('dev-local');
  await admin.upsertUser({ id });
  const client = new StreamChat(server.apiKey, { baseURL: server.url, allowServerSideConnect: true });
  client.setLocalDevice({ id: `local-${id}`, push_provider: 'firebase' });
  const connection = await client.connectUser({ id }, admin.createToken(id));
  connected.push(client);
  assert.deepEqual(connection.me.devices.map((d) => d.id), [`local-${id}`]);
  assert.deepEqual((await client.getDevices()).devices.map((d) => d.id), [`local-${id}`]);
});
