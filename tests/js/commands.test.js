// Slash commands from the official npm stream-chat client, user-side over WebSocket as the UI
// kits use them: `/giphy cat` answers an ephemeral preview only its author gets (other watchers
// hear nothing and nothing is stored), `sendAction` shuffles it to another GIF and sends it (then
// the watchers hear message.new with the giphy attachment) or cancels it (nothing left); only the
// author may act on it; a channel moderator's `/ban @member` bans the member in that channel,
// a plain member's is refused; `/mute @user` mutes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectAs, nextEvent, uid, useServer } from './harness.js';

let server;
let admin;
useServer((s, c) => {
  server = s;
  admin = c;
});

const connect = (id) => connectAs(server, admin, id);

// A messaging channel with an author, a watcher and a channel moderator, each connected and
// watching it.
async function scene() {
  const [author, watcher, mod] = [uid('aut'), uid('wat'), uid('mod')];
  await admin.upsertUsers([{ id: author }, { id: watcher }, { id: mod }]);
  const id = uid('room');
  const channel = admin.channel('messaging', id, { members: [author, watcher, mod], created_by_id: author });
  await channel.create();
  await channel.addModerators([mod]);
  const clients = { author: await connect(author), watcher: await connect(watcher), mod: await connect(mod) };
  const watching = {};
  for (const [who, client] of Object.entries(clients)) {
    watching[who] = client.channel('messaging', id);
    await watching[who].watch();
  }
  return { ids: { author, watcher, mod }, clients, watching };
}

async function disconnect(clients) {
  for (const client of Object.values(clients)) await client.disconnectUser();
}

// Every message.new a channel hears from now on.
function record(channel) {
  const heard = [];
  const sub = channel.on('message.new', (e) => heard.push(e));
  return { heard, stop: () => sub.unsubscribe() };
}

function assertGiphy(attachment, withActions) {
  assert.equal(attachment.type, 'giphy');
  for (const key of ['title', 'title_link', 'thumb_url', 'image_url']) assert.ok(attachment[key], key);
  for (const rendition of ['original', 'fixed_height', 'fixed_width']) {
    const r = attachment.giphy[rendition];
    assert.ok(r && r.url && r.width && r.height, rendition);
  }
  if (withActions) {
    assert.deepEqual(
      attachment.actions.map((a) => [a.name, a.value, a.type]),
      [
        ['image_action', 'send', 'button'],
        ['image_action', 'shuffle', 'button'],
        ['image_action', 'cancel', 'button'],
      ],
    );
  } else {
    assert.ok(!attachment.actions || attachment.actions.length === 0, JSON.stringify(attachment.actions));
  }
}

test('the channel config lists the commands the composer offers', async () => {
  const { clients, watching } = await scene();
  const names = watching.author.getConfig().commands.map((c) => c.name);
  assert.deepEqual(names, ['giphy', 'ban', 'unban', 'mute', 'unmute']);
  await disconnect(clients);
});

test('/giphy previews privately; shuffle, then send reaches the watchers', async () => {
  const { ids, clients, watching } = await scene();
  const tap = record(watching.watcher);
  const { message: preview } = await watching.author.sendMessage({ text: '/giphy cat' });
  assert.equal(preview.type, 'ephemeral');
  assert.equal(preview.command, 'giphy');
  assert.equal(preview.args, 'cat');
  assert.equal(preview.user.id, ids.author);
  assert.equal(preview.attachments.length, 1);
  assertGiphy(preview.attachments[0], true);

  const { message: shuffled } = await watching.author.sendAction(preview.id, { image_action: 'shuffle' });
  assert.equal(shuffled.id, preview.id);
  assert.equal(shuffled.type, 'ephemeral');
  assertGiphy(shuffled.attachments[0], true);
  assert.notEqual(shuffled.attachments[0].image_url, preview.attachments[0].image_url);

  // Events on one connection arrive in order: when the marker arrives, a broadcast preview
  // would have arrived before it.
  const marker = nextEvent(watching.watcher, 'message.new', (e) => e.message?.text === 'marker');
  await watching.author.sendMessage({ text: 'marker' });
  await marker;
  assert.deepEqual(tap.heard.map((e) => e.message.text), ['marker']);
  assert.ok(!(await watching.watcher.query({ messages: { limit: 10 } })).messages.some((m) => m.id === preview.id));

  const heard = nextEvent(watching.watcher, 'message.new', (e) => e.message?.id === preview.id);
  const { message: sent } = await watching.author.sendAction(preview.id, { image_action: 'send' });
  assert.equal(sent.id, preview.id);
  assert.equal(sent.type, 'regular');
  assert.equal(sent.command, 'giphy');
  assert.equal(sent.text, '');
  assertGiphy(sent.attachments[0], false);
  assert.equal(sent.attachments[0].image_url, shuffled.attachments[0].image_url);
  const event = await heard;
  assert.equal(event.user.id, ids.author);
  assert.equal(event.message.command, 'giphy');
  assertGiphy(event.message.attachments[0], false);
  assert.equal(event.message.attachments[0].image_url, shuffled.attachments[0].image_url);
  tap.stop();
  assert.deepEqual(tap.heard.map((e) => e.message.id).filter((id) => id === preview.id), [preview.id]);
  // Stored: the watcher's fresh query has it.
  const { messages } = await watching.watcher.query({ messages: { limit: 10 } });
  assert.deepEqual(
    messages.map((m) => [m.text, m.command ?? '']),
    [
      ['marker', ''],
      ['', 'giphy'],
    ],
  );
  // The preview is gone: acting on it again is 404.
  await assert.rejects(watching.author.sendAction(preview.id, { image_action: 'shuffle' }), (err) => {
    assert.equal(err.status, 404);
    return true;
  });
  await disconnect(clients);
});

test('/giphy then cancel leaves nothing behind', async () => {
  const { clients, watching } = await scene();
  const tap = record(watching.watcher);
  const { message: preview } = await watching.author.sendMessage({ text: '/giphy dog' });
  assert.equal(preview.type, 'ephemeral');
  const cancelled = await watching.author.sendAction(preview.id, { image_action: 'cancel' });
  assert.equal(cancelled.message, undefined);
  await assert.rejects(watching.author.sendAction(preview.id, { image_action: 'send' }), (err) => {
    assert.equal(err.status, 404);
    assert.equal(err.code, 16);
    return true;
  });
  const marker = nextEvent(watching.watcher, 'message.new', (e) => e.message?.text === 'marker');
  await watching.author.sendMessage({ text: 'marker' });
  await marker;
  tap.stop();
  assert.deepEqual(tap.heard.map((e) => e.message.text), ['marker']);
  const { messages } = await watching.watcher.query({ messages: { limit: 10 } });
  assert.deepEqual(messages.map((m) => m.text), ['marker']);
  await disconnect(clients);
});

test("only the author acts on a preview; /giphy with no words and unknown actions are refused", async () => {
  const { clients, watching } = await scene();
  const { message: preview } = await watching.author.sendMessage({ text: '/giphy party' });
  for (const action of ['send', 'shuffle', 'cancel']) {
    await assert.rejects(watching.watcher.sendAction(preview.id, { image_action: action }), (err) => {
      assert.equal(err.status, 403);
      assert.equal(err.code, 17);
      return true;
    });
  }
  await assert.rejects(watching.author.sendAction(preview.id, { image_action: 'dance' }), (err) => {
    assert.equal(err.status, 400);
    return true;
  });
  await assert.rejects(watching.author.sendAction('no-such-message', { image_action: 'send' }), (err) => {
    assert.equal(err.status, 404);
    return true;
  });
  await assert.rejects(watching.author.sendMessage({ text: '/giphy' }), (err) => {
    assert.equal(err.status, 400);
    assert.equal(err.code, 4);
    return true;
  });
  // The preview survived all that.
  const { message: sent } = await watching.author.sendAction(preview.id, { image_action: 'send' });
  assert.equal(sent.command, 'giphy');
  await disconnect(clients);
});

test("a channel moderator's /ban @member stops the member's sends; /unban lets them back", async () => {
  const { ids, clients, watching } = await scene();
  const banned = nextEvent(watching.watcher, 'user.banned', (e) => e.user?.id === ids.author);
  const { message: reply } = await watching.mod.sendMessage({ text: `/ban @${ids.author} spam` });
  assert.equal(reply.type, 'ephemeral');
  assert.equal(reply.command, 'ban');
  assert.match(reply.text, new RegExp(`${ids.author}.*banned`));
  await banned;
  await assert.rejects(watching.author.sendMessage({ text: 'let me in' }), (err) => {
    assert.equal(err.code, 17);
    return true;
  });
  const { bans } = await admin.queryBannedUsers({ channel_cid: watching.mod.cid });
  assert.deepEqual(bans.map((b) => [b.user.id, b.banned_by?.id, b.reason]), [[ids.author, ids.mod, 'spam']]);
  await watching.mod.sendMessage({ text: `/unban @${ids.author}` });
  const { message } = await watching.author.sendMessage({ text: 'back again' });
  assert.equal(message.type, 'regular');
  await disconnect(clients);
});

test("a plain member's /ban is refused and bans nobody", async () => {
  const { ids, clients, watching } = await scene();
  await assert.rejects(watching.watcher.sendMessage({ text: `/ban @${ids.author} spam` }), (err) => {
    assert.equal(err.status, 403);
    assert.equal(err.code, 17);
    return true;
  });
  const { bans } = await admin.queryBannedUsers({ channel_cid: watching.mod.cid });
  assert.deepEqual(bans, []);
  const { message } = await watching.author.sendMessage({ text: 'still here' });
  assert.equal(message.type, 'regular');
  await disconnect(clients);
});

test('/mute @user mutes for the author, /unmute lifts it', async () => {
  const { ids, clients, watching } = await scene();
  const { message: reply } = await watching.author.sendMessage({ text: `/mute @${ids.watcher}` });
  assert.equal(reply.type, 'ephemeral');
  assert.equal(reply.command, 'mute');
  assert.match(reply.text, new RegExp(`${ids.watcher} was muted`));
  // A fresh connection of the author carries the mute.
  const again = await connect(ids.author);
  assert.deepEqual(again.user.mutes.map((m) => m.target.id), [ids.watcher]);
  await again.disconnectUser();
  await watching.author.sendMessage({ text: `/unmute @${ids.watcher}` });
  const after = await connect(ids.author);
  assert.deepEqual(after.user.mutes, []);
  await after.disconnectUser();
  assert.deepEqual((await watching.watcher.query({ messages: { limit: 10 } })).messages, []);
  await disconnect(clients);
});
