// The official npm stream-chat client, used server-side (with the secret) over REST against
// chat-local: users, app settings, roles, permissions, channel types, tasks and errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uid, useServer } from './harness.js';

let server;
let client;
useServer((s, c) => {
  server = s;
  client = c;
});

async function waitTask(taskId) {
  for (let i = 0; i < 200; i++) {
    const task = await client.getTask(taskId);
    if (task.status === 'completed' || task.status === 'failed') return task;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`task ${taskId} did not finish`);
}

test('upsert, partial update and query users', async () => {
  const a = uid('js');
  const b = uid('js');
  const up = await client.upsertUsers([
    { id: a, name: 'Ann', role: 'admin', age: 30 },
    { id: b, name: 'Bob', age: 40 },
  ]);
  assert.equal(up.users[a].role, 'admin');
  assert.equal(up.users[b].age, 40);
  const patched = await client.partialUpdateUser({ id: b, set: { 'profile.city': 'Oslo' }, unset: ['age'] });
  assert.deepEqual(patched.users[b].profile, { city: 'Oslo' });
  assert.equal(patched.users[b].age, undefined);
  const found = await client.queryUsers({ id: { $in: [a, b] } }, { id: 1 });
  assert.deepEqual(found.users.map((u) => u.id), [a, b].sort());
  const byAge = await client.queryUsers({ id: { $in: [a, b] }, age: { $gte: 30 } });
  assert.deepEqual(byAge.users.map((u) => u.id), [a]);
});

test('deactivate, reactivate and delete', async () => {
  const id = uid('life');
  await client.upsertUser({ id });
  const off = await client.deactivateUser(id, { mark_messages_deleted: false });
  assert.ok(off.user.deactivated_at);
  const on = await client.reactivateUser(id);
  assert.equal(on.user.deactivated_at, undefined);
  const gone = await client.deleteUser(id, { mark_messages_deleted: false });
  assert.ok(gone.user.deleted_at);
  const found = await client.queryUsers({ id });
  assert.deepEqual(found.users, []);
});

test('batch deactivate and reactivate are tasks', async () => {
  const ids = [uid('bt'), uid('bt')];
  await client.upsertUsers(ids.map((id) => ({ id })));
  const started = await client.deactivateUsers(ids);
  const task = await waitTask(started.task_id);
  assert.equal(task.status, 'completed');
  assert.deepEqual(task.result.users.map((u) => u.id).sort(), [...ids].sort());
  const back = await waitTask((await client.reactivateUsers(ids)).task_id);
  assert.equal(back.status, 'completed');
  assert.equal((await client.queryUsers({ id: { $in: ids } })).users.length, 2);
});

test('app settings round trip', async () => {
  await client.updateAppSettings({ reminders_interval: 180, enforce_unique_usernames: 'no' });
  const { app } = await client.getAppSettings();
  assert.equal(app.reminders_interval, 180);
  await assert.rejects(client.updateAppSettings({ reminders_interval: 5 }), (err) => {
    assert.equal(err.code, 4);
    assert.equal(err.status, 400);
    return true;
  });
});

test('token revocation through the client', async () => {
  const id = uid('rev');
  await client.upsertUser({ id });
  await client.revokeUserToken(id, new Date(Date.now() - 60_000));
  const token = client.createToken(id, undefined, Math.floor(Date.now() / 1000) - 3600);
  const res = await fetch(`${server.url}/app?api_key=${server.apiKey}`, {
    headers: { Authorization: token, 'stream-auth-type': 'jwt' },
  });
  assert.equal(res.status, 401);
  assert.equal((await res.json()).code, 42);
});

test('roles, permissions and channel types', async () => {
  const role = uid('role').replace(/-/g, '_');
  await client.createRole(role);
  assert.ok((await client.listRoles()).roles.some((r) => r.name === role));
  await client.deleteRole(role);
  const { permissions } = await client.listPermissions();
  assert.ok(permissions.some((p) => p.id === 'create-message'));
  const messaging = await client.getChannelType('messaging');
  assert.equal(messaging.name, 'messaging');
  const name = uid('ct').replace(/-/g, '');
  const created = await client.createChannelType({ name, reactions: false });
  assert.equal(created.reactions, false);
  const updated = await client.updateChannelType(name, { reactions: true, max_message_length: 100 });
  assert.equal(updated.max_message_length, 100);
  await client.deleteChannelType(name);
  await assert.rejects(client.getChannelType(name), (err) => err.code === 16 && err.status === 404);
});
