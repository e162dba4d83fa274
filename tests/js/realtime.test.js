// The official npm stream-chat client as apps use it: user-side, connected over WebSocket to
// chat-local. Events sent by one user reach the other and keep the client's own state right.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { StreamChat } from 'stream-chat';
import { startServer } from './harness.js';

let server;
let admin;

before(async () => {
  server = await startServer();
  admin = new StreamChat(server.apiKey, server.apiSecret, { baseURL: server.url });
});

after(async () => {
  await server.stop();
});

const uid = (p) => `${p}-${Math.random().toString(36).slice(2, 10)}`;

async function connect(id, extra = {}) {
  const client = new StreamChat(server.apiKey, { baseURL: server.url, allowServerSideConnect: true });
  const me = await client.connectUser({ id, name: `name ${id}`, ...extra }, admin.createToken(id));
  return { client, me };
}

function nextEvent(target, type, match = () => true, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} within ${timeoutMs} ms`)), timeoutMs);
    const sub = target.on(type, (event) => {
      if (!match(event)) return;
      clearTimeout(timer);
      sub.unsubscribe();
      resolve(event);
    });
  });
}

test('connectUser resolves with the health.check hello', async () => {
  const id = uid('conn');
  const { client, me } = await connect(id, { color: 'teal', role: 'admin' });
  assert.equal(me.type, 'health.check');
  assert.ok(me.connection_id);
  assert.equal(me.me.id, id);
  assert.equal(me.me.color, 'teal');
  assert.equal(me.me.role, 'user', 'the role never comes from the client');
  assert.deepEqual(me.me.channel_mutes, []);
  assert.equal(typeof me.me.total_unread_count, 'number');
  assert.equal(client.user.id, id);
  await client.disconnectUser();
});

test('two users watching a channel see each other', async () => {
  const [a, b] = [uid('alice'), uid('bob')];
  const alice = await connect(a);
  const bob = await connect(b);
  await admin.channel('messaging', uid('rt'), { members: [a, b], created_by_id: a }).create();
  const [chA] = await alice.client.queryChannels({ members: { $in: [a] } }, {}, { watch: true });
  const chB = bob.client.channel(chA.type, chA.id);
  await chB.watch();
  assert.equal(chB.state.watcher_count, 2);

  const received = nextEvent(chB, 'message.new');
  const { message } = await chA.sendMessage({ text: 'hi bob' });
  const event = await received;
  assert.equal(event.message.id, message.id);
  assert.equal(event.user.id, a);
  assert.ok(chB.state.messages.some((m) => m.id === message.id));
  assert.equal(chB.countUnread(), 1);

  const typing = nextEvent(chB, 'typing.start');
  await chA.keystroke();
  assert.equal((await typing).user.id, a);

  const reacted = nextEvent(chA, 'reaction.new');
  await chB.sendReaction(message.id, { type: 'love' });
  const r = await reacted;
  assert.equal(r.reaction.type, 'love');
  const ownCopy = chA.state.messages.find((m) => m.id === message.id);
  assert.equal(ownCopy.reaction_groups.love.count, 1);

  const read = nextEvent(chA, 'message.read');
  await chB.markRead();
  assert.equal((await read).user.id, b);
  assert.equal(chA.state.read[b].unread_messages, 0);

  const gone = nextEvent(chA, 'user.watching.stop');
  await chB.stopWatching();
  assert.equal((await gone).user.id, b);

  await alice.client.disconnectUser();
  await bob.client.disconnectUser();
});

test('a member who is not watching gets notification.message_new', async () => {
  const [a, b] = [uid('sender'), uid('idle')];
  const sender = await connect(a);
  const idle = await connect(b);
  const ch = admin.channel('messaging', uid('nw'), { members: [a, b], created_by_id: a });
  await ch.create();
  const chA = sender.client.channel(ch.type, ch.id);
  await chA.watch();
  const notified = nextEvent(idle.client, 'notification.message_new');
  await chA.sendMessage({ text: 'are you there?' });
  const n = await notified;
  assert.equal(n.channel.cid, ch.cid);
  assert.equal(n.message.text, 'are you there?');
  await sender.client.disconnectUser();
  await idle.client.disconnectUser();
});

test('presence follows connections', async () => {
  const id = uid('presence');
  const { client } = await connect(id);
  let { users } = await admin.queryUsers({ id });
  assert.equal(users[0].online, true);
  await client.disconnectUser();
  await new Promise((r) => setTimeout(r, 200));
  ({ users } = await admin.queryUsers({ id }));
  assert.equal(users[0].online, false);
});

test('an expired token is refused with code 40', async () => {
  const id = uid('late');
  const client = new StreamChat(server.apiKey, { baseURL: server.url, allowServerSideConnect: true });
  const expired = admin.createToken(id, Math.floor(Date.now() / 1000) - 60);
  await assert.rejects(client.connectUser({ id }, expired), (err) => {
    assert.match(String(err.message), /"code":40/);
    return true;
  });
  await client.disconnectUser();
});

test('presence: true subscribes to other users coming and going', async () => {
  const [watcher, other] = [uid('watcher'), uid('other')];
  await admin.upsertUsers([{ id: other }]);
  const w = await connect(watcher);
  await w.client.queryUsers({ id: other }, {}, { presence: true });
  const about = (e) => e.user?.id === other;
  const online = nextEvent(w.client, 'user.presence.changed', about);
  const o = await connect(other);
  const up = await online;
  assert.equal(up.user.id, other);
  assert.equal(up.user.online, true);
  const offline = nextEvent(w.client, 'user.presence.changed', about);
  await o.client.disconnectUser();
  const down = await offline;
  assert.equal(down.user.online, false);
  await w.client.disconnectUser();
});
