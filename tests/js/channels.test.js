// The official npm stream-chat client, server-side over REST against chat-local: channels are
// created, queried, updated and deleted through its Channel objects, so the responses go through
// the client's own state handling (members, read, config, capabilities).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uid, useServer } from './harness.js';

let server;
let client;
useServer((s, c) => {
  server = s;
  client = c;
});

async function people(n) {
  const ids = Array.from({ length: n }, () => uid('u'));
  await client.upsertUsers(ids.map((id) => ({ id, name: `name ${id}` })));
  return ids;
}

test('create a channel and read it into the client state', async () => {
  const [owner, a, b] = await people(3);
  const channel = client.channel('messaging', uid('js'), {
    name: 'Team',
    members: [owner, a, b],
    created_by_id: owner,
  });
  const state = await channel.create();
  assert.equal(state.channel.cid, channel.cid);
  assert.equal(state.channel.member_count, 3);
  assert.equal(state.channel.created_by.id, owner);
  assert.equal(channel.data.name, 'Team');
  assert.equal(Object.keys(channel.state.members).length, 3);
  assert.equal(channel.getConfig().name, 'messaging');
});

test('distinct channel from members', async () => {
  const [a, b] = await people(2);
  const first = client.channel('messaging', { members: [a, b], created_by_id: a });
  await first.create();
  assert.ok(first.id.startsWith('!members-'));
  const again = client.channel('messaging', { members: [b, a], created_by_id: b });
  await again.create();
  assert.equal(again.cid, first.cid);
});

test('members, moderators and query members', async () => {
  const [owner, a, b] = await people(3);
  const channel = client.channel('messaging', uid('js'), { created_by_id: owner });
  await channel.create();
  let res = await channel.addMembers([a, { user_id: b, role_hint: 'x' }]);
  assert.deepEqual(res.members.map((m) => m.user_id).sort(), [a, b].sort());
  res = await channel.addModerators([a]);
  assert.equal(res.members.find((m) => m.user_id === a).is_moderator, true);
  const mods = await channel.queryMembers({ is_moderator: true });
  assert.deepEqual(mods.members.map((m) => m.user_id), [a]);
  const named = await channel.queryMembers({ name: { $autocomplete: 'name' } }, { user_id: 1 }, { limit: 1 });
  assert.equal(named.members.length, 1);
  res = await channel.removeMembers([b]);
  assert.deepEqual(res.members.map((m) => m.user_id), [a]);
});

test('update, partial update and query channels', async () => {
  const [owner] = await people(1);
  const tag = uid('tag');
  const one = client.channel('messaging', uid('js'), { tag, rank: 2, created_by_id: owner });
  const two = client.channel('messaging', uid('js'), { tag, rank: 1, extra: 'x', created_by_id: owner });
  await one.create();
  await two.create();
  await one.update({ tag, rank: 3, color: 'red' });
  assert.equal(one.data.color, 'red');
  const patched = await two.updatePartial({ set: { color: 'blue' }, unset: ['extra'] });
  assert.equal(patched.channel.color, 'blue');
  assert.equal(patched.channel.extra, undefined);
  const found = await client.queryChannels({ tag }, [{ rank: -1 }], { user_id: owner });
  assert.deepEqual(
    found.map((c) => c.cid),
    [one.cid, two.cid],
  );
  const ranked = await client.queryChannels({ tag, rank: { $gt: 2 } }, {}, { user_id: owner });
  assert.deepEqual(
    ranked.map((c) => c.cid),
    [one.cid],
  );
});

test('mute, hide, archive and pin for a member', async () => {
  const [owner, a] = await people(2);
  const channel = client.channel('messaging', uid('js'), { members: [owner, a], created_by_id: owner });
  await channel.create();
  const muted = await channel.mute({ user_id: a, expiration: 60000 });
  assert.equal(muted.channel_mute.channel.cid, channel.cid);
  assert.equal(muted.channel_mute.user.id, a);
  let list = await client.queryChannels({ cid: channel.cid, muted: true }, {}, { user_id: a });
  assert.equal(list.length, 1);
  await channel.unmute({ user_id: a });
  list = await client.queryChannels({ cid: channel.cid, muted: true }, {}, { user_id: a });
  assert.equal(list.length, 0);
  await channel.hide(a);
  list = await client.queryChannels({ cid: channel.cid }, {}, { user_id: a });
  assert.equal(list.length, 0);
  await channel.show(a);
  const pinned = await channel.pin({ user_id: a });
  assert.ok(pinned.pinned_at);
  const archived = await channel.archive({ user_id: a });
  assert.ok(archived.archived_at);
  list = await client.queryChannels({ cid: channel.cid, archived: true, pinned: true }, {}, { user_id: a });
  assert.equal(list.length, 1);
});

test('truncate and delete', async () => {
  const [owner] = await people(1);
  const channel = client.channel('messaging', uid('js'), { created_by_id: owner });
  await channel.create();
  const truncated = await channel.truncate({ user_id: owner });
  assert.ok(truncated.channel.truncated_at);
  const deleted = await channel.delete();
  assert.ok(deleted.channel.deleted_at);
  const other = client.channel('messaging', uid('js'), { created_by_id: owner });
  await other.create();
  const { task_id } = await client.deleteChannels([other.cid], { hard_delete: true });
  assert.ok(task_id);
});

test('errors arrive in the Stream envelope', async () => {
  const [owner] = await people(1);
  await assert.rejects(client.channel('messaging', 'x'.repeat(65), { created_by_id: owner }).create(), (err) => {
    assert.equal(err.code, 4);
    assert.equal(err.status, 400);
    return true;
  });
  await assert.rejects(client.channel('nope', uid('js'), { created_by_id: owner }).create(), (err) => {
    assert.equal(err.code, 16);
    return true;
  });
});
