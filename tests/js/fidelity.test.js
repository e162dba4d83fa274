// Wire fidelity with the official npm stream-chat client, user-side over WebSocket: developer
// tokens as the client makes them, live thread parents, presence and profile events reaching
// the connections that show the user, hidden channels coming back, and the channel message
// count on deletes. Tests are named by the item of the fidelity brief they specify.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamChat } from 'stream-chat';
import { nextEvent, uid, useServer } from './harness.js';

let server;
let admin;
useServer((s, c) => {
  server = s;
  admin = c;
});

function newClient() {
  return new StreamChat(server.apiKey, { baseURL: server.url, allowServerSideConnect: true });
}

async function connect(id) {
  const client = newClient();
  await client.connectUser({ id }, admin.createToken(id));
  return client;
}

// A random user id of exactly `length` characters (letters and digits).
function idOfLength(length) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let id = '';
  for (let i = 0; i < length; i++) id += alphabet[Math.floor(Math.random() * alphabet.length)];
  return id;
}

test('10: developer tokens connect for user ids of every length when auth checks are off', async () => {
  await admin.updateAppSettings({ disable_auth_checks: true });
  const refused = [];
  try {
    for (let length = 1; length <= 30; length++) {
      const id = idOfLength(length);
      const client = newClient();
      const token = client.devToken(id);
      try {
        const me = await client.connectUser({ id }, token);
        assert.equal(me.me.id, id);
      } catch (err) {
        refused.push(`${length} chars (${token}): ${String(err.message).slice(0, 160)}`);
      } finally {
        await client.disconnectUser();
      }
    }
  } finally {
    await admin.updateAppSettings({ disable_auth_checks: false });
  }
  assert.deepEqual(refused, [], `developer tokens refused:\n${refused.join('\n')}`);

  // With auth checks back on, a developer token is refused again.
  const id = uid('dev');
  const client = newClient();
  await assert.rejects(client.connectUser({ id }, client.devToken(id)));
  await client.disconnectUser();
});

test('12: a reply updates its thread parent live for watchers', async () => {
  const [a, b] = [uid('replier'), uid('watcher')];
  const alice = await connect(a);
  const bob = await connect(b);
  const id = uid('thread');
  await admin.channel('messaging', id, { members: [a, b], created_by_id: b }).create();
  const chA = alice.channel('messaging', id);
  const chB = bob.channel('messaging', id);
  await chA.watch();
  await chB.watch();
  const own = nextEvent(chB, 'message.new');
  const { message: parent } = await chB.sendMessage({ text: 'the parent' });
  await own;
  assert.equal(chB.state.messages.find((m) => m.id === parent.id)?.reply_count, 0);

  const updated = nextEvent(chB, 'message.updated', (e) => e.message?.id === parent.id);
  await chA.sendMessage({ text: 'a reply', parent_id: parent.id });
  const event = await updated;
  assert.equal(event.message.reply_count, 1);
  assert.ok(
    (event.message.thread_participants ?? []).some((u) => u.id === a),
    `thread_participants names the replier: ${JSON.stringify(event.message.thread_participants)}`,
  );
  const held = chB.state.messages.find((m) => m.id === parent.id);
  assert.equal(held?.reply_count, 1, "the watcher's channel state shows the reply without reloading");
  await alice.disconnectUser();
  await bob.disconnectUser();
});

test('13: presence: true on query channels subscribes to the members coming and going', async () => {
  const [p, q] = [uid('subscriber'), uid('member')];
  await admin.upsertUsers([{ id: q }]);
  const sub = await connect(p);
  const id = uid('presence');
  await admin.channel('messaging', id, { members: [p, q], created_by_id: p }).create();
  const found = await sub.queryChannels({ cid: `messaging:${id}` }, {}, { watch: true, presence: true });
  assert.equal(found.length, 1);

  const about = (e) => e.user?.id === q;
  const online = nextEvent(sub, 'user.presence.changed', about);
  const member = await connect(q);
  assert.equal((await online).user.online, true);
  const offline = nextEvent(sub, 'user.presence.changed', about);
  await member.disconnectUser();
  assert.equal((await offline).user.online, false);
  await sub.disconnectUser();
});

test('14: user.updated reaches watchers of the user’s channels and presence subscribers', async () => {
  const [b, c] = [uid('watcher'), uid('renamed')];
  await admin.upsertUsers([{ id: c, name: 'before' }]);
  const bob = await connect(b);
  const id = uid('profile');
  await admin.channel('messaging', id, { members: [b, c], created_by_id: b }).create();
  await bob.channel('messaging', id).watch();
  const heard = nextEvent(bob, 'user.updated', (e) => e.user?.id === c);
  await admin.partialUpdateUser({ id: c, set: { name: 'after' } });
  assert.equal((await heard).user.name, 'after');

  // A presence subscriber who shares no channel with the user hears it too.
  const [p, r] = [uid('subscriber'), uid('followed')];
  await admin.upsertUsers([{ id: r, name: 'first' }]);
  const sub = await connect(p);
  await sub.queryUsers({ id: r }, {}, { presence: true });
  const told = nextEvent(sub, 'user.updated', (e) => e.user?.id === r);
  await admin.partialUpdateUser({ id: r, set: { name: 'second' } });
  assert.equal((await told).user.name, 'second');
  await bob.disconnectUser();
  await sub.disconnectUser();
});

test('15: a new message unhides a hidden channel with channel.visible', async () => {
  const [a, b] = [uid('sender'), uid('hider')];
  const alice = await connect(a);
  const bob = await connect(b);
  const id = uid('hidden');
  await admin.channel('messaging', id, { members: [a, b], created_by_id: a }).create();
  const chA = alice.channel('messaging', id);
  const chB = bob.channel('messaging', id);
  await chA.watch();
  await chB.watch();
  await chB.hide();
  const mine = { members: { $in: [b] } };
  assert.ok(!(await bob.queryChannels(mine, {}, {})).some((c) => c.id === id), 'hidden from the hider');

  const visible = nextEvent(bob, 'channel.visible', (e) => e.cid === chB.cid);
  await chA.sendMessage({ text: 'come back' });
  const event = await visible;
  assert.equal(event.channel_id, id);
  assert.equal(event.channel_type, 'messaging');
  assert.ok((await bob.queryChannels(mine, {}, {})).some((c) => c.id === id), 'listed again for the hider');
  await alice.disconnectUser();
  await bob.disconnectUser();
});

test('17: message.deleted carries the lowered channel_message_count', async () => {
  const [a, b] = [uid('author'), uid('watcher')];
  const alice = await connect(a);
  const bob = await connect(b);
  const type = uid('counted');
  await admin.createChannelType({ name: type, count_messages: true });
  const id = uid('count');
  await admin.channel(type, id, { members: [a, b], created_by_id: a }).create();
  const chA = alice.channel(type, id);
  const chB = bob.channel(type, id);
  await chA.watch();
  await chB.watch();
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push((await chA.sendMessage({ text: `m${i}` })).message.id);
  assert.equal((await admin.channel(type, id).query({})).channel.message_count, 3);

  const deleted = nextEvent(chB, 'message.deleted', (e) => e.message?.id === ids[0]);
  await alice.deleteMessage(ids[0]);
  assert.equal((await deleted).channel_message_count, 2);
  assert.equal((await admin.channel(type, id).query({})).channel.message_count, 2);
  await alice.disconnectUser();
  await bob.disconnectUser();
});
