// The official npm stream-chat client, server-side over REST against chat-local: messages,
// threads, reactions, pins, read state and search, through the client's own methods and types.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uid, useServer } from './harness.js';

let server;
let client;
useServer((s, c) => {
  server = s;
  client = c;
});

async function setup() {
  const [author, reader] = [uid('a'), uid('r')];
  await client.upsertUsers([{ id: author, name: 'Author' }, { id: reader }]);
  const channel = client.channel('messaging', uid('m'), { members: [author, reader], created_by_id: author });
  await channel.create();
  return { author, reader, channel };
}

test('send, read, update and delete a message', async () => {
  const { author, channel } = await setup();
  const { message } = await channel.sendMessage({ text: 'hello', user_id: author, color: 'red' });
  assert.equal(message.text, 'hello');
  assert.equal(message.user.id, author);
  assert.equal(message.color, 'red');
  const got = await client.getMessage(message.id);
  assert.equal(got.message.id, message.id);
  const updated = await client.updateMessage({ id: message.id, text: 'edited' }, author);
  assert.equal(updated.message.text, 'edited');
  const partial = await client.partialUpdateMessage(message.id, { set: { 'meta.a': 1 } }, author);
  assert.deepEqual(partial.message.meta, { a: 1 });
  const deleted = await client.deleteMessage(message.id);
  assert.equal(deleted.message.type, 'deleted');
  const restored = await client.undeleteMessage(message.id, author);
  assert.equal(restored.message.type, 'regular');
  const state = await channel.query({ messages: { limit: 10 } });
  assert.deepEqual(
    state.messages.map((m) => m.id),
    [message.id],
  );
  assert.equal(channel.state.messages.length, 1);
});

test('threads and pinned messages', async () => {
  const { author, channel } = await setup();
  const { message: parent } = await channel.sendMessage({ text: 'parent', user_id: author });
  for (let i = 0; i < 3; i++) {
    await channel.sendMessage({ text: `reply ${i}`, parent_id: parent.id, user_id: author });
  }
  const replies = await channel.getReplies(parent.id, { limit: 2 });
  assert.deepEqual(
    replies.messages.map((m) => m.text),
    ['reply 1', 'reply 2'],
  );
  const pinned = await client.pinMessage(parent, null, author);
  assert.equal(pinned.message.pinned, true);
  const pins = await channel.getPinnedMessages({ limit: 10 });
  assert.deepEqual(
    pins.messages.map((m) => m.id),
    [parent.id],
  );
});

test('reactions', async () => {
  const { author, reader, channel } = await setup();
  const { message } = await channel.sendMessage({ text: 'react to me', user_id: author });
  const r = await channel.sendReaction(message.id, { type: 'love', user_id: reader });
  assert.equal(r.reaction.type, 'love');
  assert.deepEqual(r.message.reaction_counts, { love: 1 });
  assert.equal(r.message.reaction_groups.love.count, 1);
  const list = await channel.getReactions(message.id, { limit: 10 });
  assert.equal(list.reactions.length, 1);
  const gone = await channel.deleteReaction(message.id, 'love', reader);
  assert.deepEqual(gone.message.reaction_counts ?? {}, {});
});

test('read state and unread counts', async () => {
  const { author, reader, channel } = await setup();
  await channel.sendMessage({ text: 'one', user_id: author });
  await channel.sendMessage({ text: 'two', user_id: author });
  let counts = await client.getUnreadCount(reader);
  assert.equal(counts.total_unread_count, 2);
  await client.post(`${client.baseURL}/channels/messaging/${channel.id}/read`, { user_id: reader });
  counts = await client.getUnreadCount(reader);
  assert.equal(counts.total_unread_count, 0);
  const state = await channel.query();
  const entry = state.read.find((r) => r.user.id === reader);
  assert.equal(entry.unread_messages, 0);
});

test('search', async () => {
  const { author, channel } = await setup();
  const word = uid('needle');
  await channel.sendMessage({ text: `find the ${word} here`, user_id: author });
  await channel.sendMessage({ text: 'nothing to see', user_id: author });
  const found = await client.search({ cid: channel.cid }, word, { limit: 5 });
  assert.equal(found.results.length, 1);
  assert.ok(found.results[0].message.text.includes(word));
});
