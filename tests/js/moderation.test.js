// Moderation from the official npm stream-chat client, user-side over WebSocket as apps use it:
// a channel moderator bans and unbans a member, the banned member's sends are refused and the
// channel hears user.banned / user.unbanned; members flag messages and moderators read the
// flags; a shadow-banned user's message reaches nobody else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamChat } from 'stream-chat';
import { connectAs, nextEvent, uid, useServer } from './harness.js';

let server;
let admin;
useServer((s, c) => {
  server = s;
  admin = c;
});

const connect = (id) => connectAs(server, admin, id);

async function scene() {
  const [mod, member, other] = [uid('mod'), uid('mem'), uid('oth')];
  await admin.upsertUsers([{ id: mod }, { id: member }, { id: other }]);
  const id = uid('room');
  const channel = admin.channel('messaging', id, { members: [mod, member, other], created_by_id: mod });
  await channel.create();
  await channel.addModerators([mod]);
  const clients = { mod: await connect(mod), member: await connect(member), other: await connect(other) };
  const watching = {};
  for (const [who, client] of Object.entries(clients)) {
    watching[who] = client.channel('messaging', id);
    await watching[who].watch();
  }
  return { ids: { mod, member, other }, clients, watching };
}

async function disconnect(clients) {
  for (const client of Object.values(clients)) await client.disconnectUser();
}

test('a channel moderator bans and unbans a member, who cannot send meanwhile', async () => {
  const { ids, clients, watching } = await scene();
  assert.ok(watching.mod.data.own_capabilities.includes('ban-channel-members'));
  assert.ok(!watching.member.data.own_capabilities.includes('ban-channel-members'));
  const heard = nextEvent(watching.other, 'user.banned', (e) => e.user?.id === ids.member);
  await watching.mod.banUser(ids.member, { reason: 'spam', timeout: 60 });
  const banned = await heard;
  assert.equal(banned.cid, watching.mod.cid);
  await assert.rejects(watching.member.sendMessage({ text: 'let me in' }), (err) => {
    assert.equal(err.code, 17);
    return true;
  });
  // A plain member may not ban.
  await assert.rejects(watching.other.banUser(ids.mod), (err) => err.code === 17);
  const { bans } = await admin.queryBannedUsers({ channel_cid: watching.mod.cid });
  assert.deepEqual(bans.map((b) => [b.user.id, b.reason]), [[ids.member, 'spam']]);
  const lifted = nextEvent(watching.other, 'user.unbanned', (e) => e.user?.id === ids.member);
  await watching.mod.unbanUser(ids.member);
  await lifted;
  const { message } = await watching.member.sendMessage({ text: 'back again' });
  assert.equal(message.type, 'regular');
  await disconnect(clients);
});

test('members flag a message; moderators read the flags', async () => {
  const { ids, clients, watching } = await scene();
  const { message } = await watching.other.sendMessage({ text: 'buy cheap watches' });
  assert.ok(watching.member.data.own_capabilities.includes('flag-message'));
  const { flag } = await clients.member.flagMessage(message.id, { reason: 'spam' });
  assert.equal(flag.user.id, ids.member);
  const { flags } = await admin.queryMessageFlags({ channel_cid: watching.mod.cid });
  assert.deepEqual(flags.map((f) => [f.message.id, f.user.id, f.reason]), [[message.id, ids.member, 'spam']]);
  await clients.member.unflagMessage(message.id);
  assert.deepEqual((await admin.queryMessageFlags({ channel_cid: watching.mod.cid })).flags, []);
  await disconnect(clients);
});

test("a shadow-banned user's message reaches nobody else", async () => {
  const { ids, clients, watching } = await scene();
  await admin.shadowBan(ids.member, { user_id: ids.mod });
  let leaked = false;
  const sub = watching.other.on('message.new', (e) => {
    if (e.user?.id === ids.member) leaked = true;
  });
  const { message } = await watching.member.sendMessage({ text: 'shh' });
  assert.equal(message.shadowed, true);
  // A later message from someone else arrives; the shadowed one never did.
  const later = nextEvent(watching.other, 'message.new', (e) => e.user?.id === ids.mod);
  await watching.mod.sendMessage({ text: 'anyone there?' });
  await later;
  sub.unsubscribe();
  assert.equal(leaked, false);
  const state = await watching.other.query({ messages: { limit: 10 } });
  assert.ok(!state.messages.some((m) => m.id === message.id));
  await admin.removeShadowBan(ids.member, { user_id: ids.mod });
  await disconnect(clients);
});

test('an IP ban refuses connections from the banned user and from their last address', async () => {
  const [mod, target, neighbour] = [uid('mod'), uid('ipb'), uid('nbr')];
  await admin.upsertUsers([{ id: mod, role: 'admin' }, { id: target }, { id: neighbour }]);
  // Connecting records the address the target comes from (here every client's: loopback).
  const before = await connect(target);
  await before.disconnectUser();
  await admin.banUser(target, { banned_by_id: mod, ip_ban: true, reason: 'evading bans' });
  try {
    for (const who of [target, neighbour]) {
      const refused = new StreamChat(server.apiKey, { baseURL: server.url, allowServerSideConnect: true });
      await assert.rejects(refused.connectUser({ id: who }, admin.createToken(who)), /code 17/);
      await refused.disconnectUser();
    }
  } finally {
    await admin.unbanUser(target);
  }
  const back = await connect(neighbour);
  await back.disconnectUser();
});
