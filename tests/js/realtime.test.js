// The official npm stream-chat client as apps use it: user-side, connected over WebSocket to
// chat-local. Events sent by one user reach the other and keep the client's own state right.
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

async function connect(id, extra = {}) {
  const client = new StreamChat(server.apiKey, { baseURL: server.url, allowServerSideConnect: true });
  const me = await client.connectUser({ id, name: `name ${id}`, ...extra }, admin.createToken(id));
  return { client, me };
}

test('connectUser resolves with the health.check hello', async () => {
  const id = uid('conn');
  // A client may not raise its own role: the connect is refused (code 17), not silently trimmed.
  const refused = new StreamChat(server.apiKey, { baseURL: server.url, allowServerSideConnect: true });
  await assert.rejects(
    refused.connectUser({ id, color: 'teal', role: 'admin' }, admin.createToken(id)),
    /code 17/,
  );
  await refused.disconnectUser();
  const { client, me } = await connect(id, { color: 'teal', role: 'user' });
  assert.equal(me.type, 'health.check');
  assert.ok(me.connection_id);
  assert.equal(me.me.id, id);
  assert.equal(me.me.color, 'teal');
  assert.equal(me.me.role, 'user');
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
  // Bob's own counts, not the sender's.
  assert.equal(event.unread_count, 1);
  assert.equal(event.total_unread_count, 1);
  assert.equal(event.unread_channels, 1);
  assert.equal(event.watcher_count, 2);

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

  const c = uid('carol');
  await admin.upsertUsers([{ id: c }]);
  const added = nextEvent(chB, 'member.added');
  await chA.addMembers([c]);
  assert.equal((await added).member.user.id, c);
  assert.ok(chB.state.members[c], "bob's client holds the new member");

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

test('each recipient gets its own unread counts and own_reactions', async () => {
  const [a, b] = [uid('ann'), uid('ben')];
  const ann = await connect(a);
  const ben = await connect(b);
  const id = uid('own');
  await admin.channel('messaging', id, { members: [a, b], created_by_id: a }).create();
  const chA = ann.client.channel('messaging', id);
  const chB = ben.client.channel('messaging', id);
  await chA.watch();
  await chB.watch();
  const toAnn = nextEvent(chA, 'message.new');
  const toBen = nextEvent(chB, 'message.new');
  const { message } = await chA.sendMessage({ text: 'counts' });
  assert.equal((await toAnn).unread_count, 0, 'the sender has read their own message');
  assert.equal((await toBen).unread_count, 1);

  await chB.sendReaction(message.id, { type: 'like' });
  const annSees = nextEvent(ann.client, 'reaction.new', (e) => e.user.id === a);
  const benSees = nextEvent(ben.client, 'reaction.new', (e) => e.user.id === a);
  // The frames as sent (the client recomputes own_reactions from its state before listeners).
  const frames = [];
  ben.client.wsConnection.ws.addEventListener('message', (e) => frames.push(JSON.parse(e.data)));
  await chA.sendReaction(message.id, { type: 'love' });
  await annSees;
  await benSees;
  const frame = frames.find((f) => f.type === 'reaction.new');
  assert.deepEqual(frame.message.own_reactions.map((r) => r.type), ['like'], "ben's own, not ann's");
  const annMessage = chA.state.messages.find((m) => m.id === message.id);
  const benMessage = chB.state.messages.find((m) => m.id === message.id);
  assert.deepEqual(annMessage.own_reactions.map((r) => r.type), ['love']);
  assert.deepEqual(benMessage.own_reactions.map((r) => r.type), ['like']);
  assert.equal(benMessage.reaction_groups.love.count, 1);
  await ann.client.disconnectUser();
  await ben.client.disconnectUser();
});

test('message throttling: 5 a second with a burst credit of 10', async () => {
  const [a, b] = [uid('flood'), uid('reader')];
  await admin.upsertUsers([{ id: a }]);
  const reader = await connect(b);
  const id = uid('flood');
  const ch = admin.channel('messaging', id, { members: [a, b], created_by_id: a });
  await ch.create();
  const chB = reader.client.channel('messaging', id);
  await chB.watch();
  let received = 0;
  chB.on('message.new', () => received++);
  const start = Date.now();
  for (let i = 0; i < 40; i++) {
    await ch.sendMessage({ text: `m${i}`, user_id: a });
  }
  const elapsed = (Date.now() - start) / 1000;
  await new Promise((r) => setTimeout(r, 500));
  // 5 in each second that passed, plus the burst credit of 10 (per 8 s).
  assert.ok(received >= 15, `at least the rate and the burst: ${received}`);
  assert.ok(received <= 15 + 5 * Math.ceil(elapsed + 0.5), `throttled: ${received} in ${elapsed} s`);
  assert.ok(received < 40, 'not every message of the flood reached the reader');
  // The messages themselves are all kept.
  const state = await chB.query({ messages: { limit: 50 } });
  assert.equal(state.messages.length, 40);
  await reader.client.disconnectUser();
});

test('nothing from a blocked user, no notification about a muted one, nothing about a message deleted for me', async () => {
  const [a, b, c] = [uid('author'), uid('blocker'), uid('muter')];
  const author = await connect(a);
  const blocker = await connect(b);
  const muter = await connect(c);
  const id = uid('filtered');
  await admin.channel('messaging', id, { members: [a, b, c], created_by_id: a }).create();
  const chA = author.client.channel('messaging', id);
  const chB = blocker.client.channel('messaging', id);
  await chA.watch();
  await chB.watch();
  await blocker.client.blockUser(a);
  await muter.client.muteUser(a);

  const heard = [];
  chB.on('message.new', (e) => heard.push(e.message.text));
  const notified = [];
  muter.client.on('notification.message_new', (e) => notified.push(e.message.text));
  const own = nextEvent(chA, 'message.new');
  const { message } = await chA.sendMessage({ text: 'from the author' });
  await own;

  // The blocker unblocks; the muter unmutes: both hear the next one.
  await blocker.client.unBlockUser(a);
  await muter.client.unmuteUser(a);
  const blockerHears = nextEvent(chB, 'message.new');
  const muterNotified = nextEvent(muter.client, 'notification.message_new');
  await chA.sendMessage({ text: 'second' });
  assert.equal((await blockerHears).message.text, 'second');
  assert.equal((await muterNotified).message.text, 'second');
  assert.deepEqual(heard, ['second'], 'the blocked message never reached the blocker');
  assert.deepEqual(notified, ['second'], 'no notification while the author was muted');

  // Deleted for me: edits of that message no longer reach the user who deleted it.
  await blocker.client.deleteMessage(message.id, { deleteForMe: true });
  const updates = [];
  chB.on('message.updated', (e) => updates.push(e.message.id));
  const authorSees = nextEvent(chA, 'message.updated');
  await author.client.updateMessage({ id: message.id, text: 'edited' });
  await authorSees;
  const later = nextEvent(chB, 'message.new');
  await chA.sendMessage({ text: 'third' });
  await later;
  assert.deepEqual(updates, [], 'the edit of a message deleted for me stayed away');

  for (const p of [author, blocker, muter]) await p.client.disconnectUser();
});

test('long-poll fallback: a client whose WebSocket cannot connect polls instead', async () => {
  const [a, b] = [uid('lp-sender'), uid('lp-poller')];
  await admin.upsertUsers([{ id: a }]);
  const client = new StreamChat(server.apiKey, {
    baseURL: server.url,
    allowServerSideConnect: true,
    enableWSFallback: true,
  });
  // Nothing listens there: the WebSocket fails as a network failure.
  client.wsBaseURL = 'ws://127.0.0.1:9';
  const transport = nextEvent(client, 'transport.changed', () => true, 15_000);
  const me = await client.connectUser({ id: b }, admin.createToken(b));
  assert.equal((await transport).mode, 'longpoll');
  assert.equal(me.me.id, b);
  assert.ok(client.wsFallback.connectionID);

  const id = uid('lp');
  const ch = admin.channel('messaging', id, { members: [a, b], created_by_id: a });
  await ch.create();
  const channel = client.channel('messaging', id);
  await channel.watch();
  assert.equal(channel.state.watcher_count, 1, 'the long-poll connection watches');
  const heard = nextEvent(channel, 'message.new');
  await ch.sendMessage({ text: 'over long-poll', user_id: a });
  assert.equal((await heard).message.text, 'over long-poll');
  assert.ok(channel.state.messages.some((m) => m.text === 'over long-poll'));
  let { users } = await admin.queryUsers({ id: b });
  assert.equal(users[0].online, true);

  await client.disconnectUser();
  await new Promise((r) => setTimeout(r, 200));
  ({ users } = await admin.queryUsers({ id: b }));
  assert.equal(users[0].online, false, 'close=true ended the session');
});
