// Push providers and the push check from the official npm stream-chat client: the server-side
// client upserts, lists and deletes app push providers (Firebase service account, APNs token
// key) and never gets their secrets back; user tokens are refused. Devices may name a
// configured provider (an unknown name is refused), and `testPushSettings` renders the v2 push
// payload for a message and reports devices without an enabled provider.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectAs, uid, useServer } from './harness.js';

const fixtures = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..', '..', 'shared', 'tests', 'fixtures', 'push',
);
const fcmKey = readFileSync(path.join(fixtures, 'fcm_key.pem'), 'utf8');
const apnsKey = readFileSync(path.join(fixtures, 'apns_key.p8'), 'utf8');
const serviceAccount = JSON.stringify({
  type: 'service_account',
  project_id: 'p',
  client_email: 'x@p.iam',
  private_key: fcmKey,
});

let server;
let admin;
useServer((s, c) => {
  server = s;
  admin = c;
});

const connected = [];
// Providers are app-wide: every one created is deleted after the file even if a test fails.
const created = [];
after(async () => {
  for (const client of connected) await client.disconnectUser();
  for (const p of created) await admin.deletePushProvider(p).catch(() => {});
});

async function connect(id) {
  const client = await connectAs(server, admin, id);
  connected.push(client);
  return client;
}

async function upsert(provider) {
  created.push({ type: provider.type, name: provider.name });
  return admin.upsertPushProvider(provider);
}

const SECRET_FIELDS = ['firebase_credentials', 'firebase_server_key', 'apn_auth_key', 'apn_p12_cert'];

function assertNoSecrets(provider) {
  for (const field of SECRET_FIELDS) {
    assert.ok(!(field in provider) || provider[field] === '' || provider[field] == null,
      `${field} returned: ${JSON.stringify(provider[field])?.slice(0, 40)}`);
  }
  const text = JSON.stringify(provider);
  assert.ok(!text.includes('PRIVATE KEY'), 'a private key is returned');
}

test('a Firebase provider is upserted, listed and deleted without returning its credentials', async () => {
  const name = uid('fcm');
  const { push_provider: p } = await upsert({ name, type: 'firebase', firebase_credentials: serviceAccount });
  assert.equal(p.name, name);
  assert.equal(p.type, 'firebase');
  assert.ok(!('firebase_credentials' in p), `firebase_credentials returned: ${Object.keys(p)}`);
  assertNoSecrets(p);

  const { push_providers } = await admin.listPushProviders();
  const listed = push_providers.find((x) => x.name === name && x.type === 'firebase');
  assert.ok(listed, `not listed: ${JSON.stringify(push_providers)}`);
  assert.ok(!('firebase_credentials' in listed));
  assertNoSecrets(listed);
  for (const x of push_providers) assertNoSecrets(x);

  await admin.deletePushProvider({ type: 'firebase', name });
  const remaining = (await admin.listPushProviders()).push_providers;
  assert.ok(!remaining.some((x) => x.name === name), `still listed: ${JSON.stringify(remaining)}`);
  await assert.rejects(admin.deletePushProvider({ type: 'firebase', name }), (e) => e.status === 404);
});

test('an APNs token provider is upserted and listed without its auth key', async () => {
  const name = uid('apn');
  const { push_provider: p } = await upsert({
    name,
    type: 'apn',
    apn_auth_key: apnsKey,
    apn_key_id: 'KEYID12345',
    apn_team_id: 'TEAMID1234',
    apn_topic: 'com.example.app',
  });
  assert.equal(p.name, name);
  assert.equal(p.type, 'apn');
  assert.ok(!('apn_auth_key' in p), `apn_auth_key returned: ${Object.keys(p)}`);
  assertNoSecrets(p);

  const listed = (await admin.listPushProviders()).push_providers.find((x) => x.name === name);
  assert.ok(listed);
  assert.equal(listed.type, 'apn');
  assert.ok(!('apn_auth_key' in listed));
  assertNoSecrets(listed);

  await admin.deletePushProvider({ type: 'apn', name });
  assert.ok(!(await admin.listPushProviders()).push_providers.some((x) => x.name === name));
});

test('a user token can not upsert, list or delete push providers', async () => {
  const id = uid('push-user');
  await admin.upsertUser({ id });
  const user = await connect(id);
  const name = uid('fcm-user');
  await assert.rejects(
    user.upsertPushProvider({ name, type: 'firebase', firebase_credentials: serviceAccount }),
    (e) => e.status === 403,
  );
  await assert.rejects(user.listPushProviders(), (e) => e.status === 403);
  // Not created by the refused upsert.
  assert.ok(!(await admin.listPushProviders()).push_providers.some((x) => x.name === name));

  const real = uid('fcm-real');
  await upsert({ name: real, type: 'firebase', firebase_credentials: serviceAccount });
  await assert.rejects(user.deletePushProvider({ type: 'firebase', name: real }), (e) => e.status === 403);
  assert.ok((await admin.listPushProviders()).push_providers.some((x) => x.name === real));
  await admin.deletePushProvider({ type: 'firebase', name: real });
});

test('a device may name a configured push provider; an unknown name is refused', async () => {
  const id = uid('push-dev');
  await admin.upsertUser({ id });
  const user = await connect(id);
  const name = uid('fcm-dev');
  await upsert({ name, type: 'firebase', firebase_credentials: serviceAccount });

  await user.addDevice(`fcm-${id}`, 'firebase', undefined, name);
  const { devices } = await user.getDevices();
  const device = devices.find((d) => d.id === `fcm-${id}`);
  assert.ok(device, JSON.stringify(devices));
  assert.equal(device.push_provider, 'firebase');
  assert.equal(device.push_provider_name, name);

  await assert.rejects(
    user.addDevice(`fcm2-${id}`, 'firebase', undefined, uid('no-such-provider')),
    (e) => e.status === 400,
  );
  assert.deepEqual((await user.getDevices()).devices.map((d) => d.id), [`fcm-${id}`]);

  await user.removeDevice(`fcm-${id}`);
  await admin.deletePushProvider({ type: 'firebase', name });
});

test('testPushSettings renders the v2 message.new payload for a message', async () => {
  const id = uid('push-check');
  const sender = uid('push-sender');
  await admin.upsertUsers([{ id }, { id: sender }]);
  const channel = admin.channel('messaging', uid('push'), { members: [id, sender], created_by_id: sender });
  await channel.create();
  const { message } = await channel.sendMessage({ text: 'hello push', user_id: sender });

  const res = await admin.testPushSettings(id, { messageID: message.id, skipDevices: true });
  const r = res.rendered_message;
  assert.ok(r, `no rendered_message: ${JSON.stringify(res)}`);
  assert.equal(r.sender, 'stream.chat');
  assert.equal(r.type, 'message.new');
  assert.equal(r.version, 'v2');
  assert.equal(r.id, message.id);
  assert.equal(r.cid, channel.cid);
  assert.equal(r.receiver_id, id);
});

test('testPushSettings reports a device whose provider type has no enabled provider', async () => {
  const id = uid('push-noprov');
  const sender = uid('push-sender');
  await admin.upsertUsers([{ id }, { id: sender }]);
  const channel = admin.channel('messaging', uid('push'), { members: [id, sender], created_by_id: sender });
  await channel.create();
  const { message } = await channel.sendMessage({ text: 'hello devices', user_id: sender });
  // No Firebase provider exists at this point (every earlier test deletes its own).
  const providers = (await admin.listPushProviders()).push_providers;
  assert.ok(!providers.some((p) => p.type === 'firebase'), JSON.stringify(providers));
  const deviceId = `fcm-${id}`;
  await admin.addDevice(deviceId, 'firebase', id);

  const res = await admin.testPushSettings(id, { messageID: message.id });
  const err = res.device_errors?.[deviceId];
  assert.ok(err, `no device error for ${deviceId}: ${JSON.stringify(res)}`);
  assert.match(err.error_message ?? '', /no enabled push provider/i);
  await admin.removeDevice(deviceId, id);
});

test('setPushPreferences sets the user\'s own preferences; another user\'s is refused', async () => {
  const me = uid('pref');
  const other = uid('pref');
  await admin.upsertUsers([{ id: me }, { id: other }]);
  const client = await connect(me);
  const set = await client.setPushPreferences([{ chat_level: 'mentions' }]);
  assert.deepEqual(set.user_preferences[me], { chat_level: 'mentions' });
  await assert.rejects(
    client.setPushPreferences([{ user_id: other, chat_level: 'none' }]),
    (err) => err.status === 403,
  );
  const cleared = await client.setPushPreferences([{ chat_level: 'default' }]);
  assert.deepEqual(cleared.user_preferences[me], {});
});
