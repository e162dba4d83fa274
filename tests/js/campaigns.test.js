// Segments and campaigns from the official npm stream-chat client, server-side (with the secret):
// a user segment through the JS `Segment` helper and the client's segment calls (the create
// sends `"id": null`), targets added, checked and queried; a campaign through the JS `Campaign`
// class (create reads `result.campaign.id`, start, get with a users page, stop with no body,
// delete) and `queryCampaigns`; the message reaches a connected receiver. Each read checks the
// shapes the SDK itself reads.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectAs, nextEvent, uid, useServer } from './harness.js';

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

async function waitFor(campaign, statuses, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { campaign: data } = await campaign.get();
    if (statuses.includes(data.status)) return data;
    if (Date.now() > deadline) throw new Error(`campaign ${campaign.id} still ${data.status}: ${JSON.stringify(data.stats)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('a user segment: create with a null id, targets, query', async () => {
  const name = uid('seg');
  // The Segment helper does not keep the id the server generates: it comes from the answer.
  const created = await admin.segment('user', { name, description: 'from js' }).create();
  const { segment } = created;
  assert.match(segment.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.equal(segment.type, 'user');
  assert.equal(segment.name, name);
  assert.equal(segment.description, 'from js');
  assert.equal(segment.size, 0);
  assert.equal(segment.all_users, false);
  assert.equal(segment.deleted_at, null);

  const seg = admin.segment('user', segment.id);
  const targets = ['j00', 'j01', 'j02', 'j03', 'j04'];
  await seg.addTargets(targets);
  assert.equal((await seg.get()).segment.size, 5);
  await seg.targetExists('j03');
  await assert.rejects(seg.targetExists('j99'), (err) => err.response?.status === 404 && /code 16/.test(err.message));

  // queryTargets always sends filter {} and sort [].
  const page1 = await seg.queryTargets({}, [], { limit: 2 });
  assert.deepEqual(page1.targets.map((t) => t.target_id), ['j00', 'j01']);
  assert.equal(page1.targets[0].segment_id, segment.id);
  assert.ok(page1.next, JSON.stringify(page1));
  const page2 = await seg.queryTargets({}, [], { limit: 2, next: page1.next });
  assert.deepEqual(page2.targets.map((t) => t.target_id), ['j02', 'j03']);
  const byFilter = await seg.queryTargets({ target_id: { $in: ['j04', 'j00', 'zz'] } }, [{ field: 'target_id', direction: -1 }]);
  assert.deepEqual(byFilter.targets.map((t) => t.target_id), ['j04', 'j00']);
  assert.equal(byFilter.next, '');

  const { segments } = await admin.querySegments({ id: { $eq: segment.id } }, [{ field: 'created_at', direction: -1 }], { limit: 10 });
  assert.equal(segments.length, 1);
  assert.equal(segments[0].id, segment.id);
  assert.equal(segments[0].size, 5);

  const updated = await seg.update({ name: `${name}-2` });
  assert.equal(updated.segment.name, `${name}-2`);
  assert.equal(updated.segment.description, 'from js');
  await seg.removeTargets(['j00', 'j01']);
  assert.equal((await seg.get()).segment.size, 3);

  // createUserSegment with an explicit id, and the channel flavour.
  const mine = uid('js-seg');
  assert.equal((await admin.createUserSegment(mine, { name: 'mine' })).segment.id, mine);
  const chan = await admin.createChannelSegment(null, { name: 'channels' });
  assert.equal(chan.segment.type, 'channel');
  for (const id of [segment.id, mine, chan.segment.id]) await admin.deleteSegment(id);
  await assert.rejects(seg.get(), (err) => err.response?.status === 404);
});

test('a campaign through the Campaign class: create, start, deliver, query, stop, delete', async () => {
  const [sender, ann, bob] = [uid('sender'), uid('ann'), uid('bob')];
  await admin.upsertUsers([
    { id: sender, name: 'Sue' },
    { id: ann, name: 'Ann' },
    { id: bob, name: 'Bob' },
  ]);
  const { segment } = await admin.createUserSegment(null, { name: uid('audience') });
  await admin.addSegmentTargets(segment.id, [ann, bob]);

  const annClient = await connectAs(server, admin, ann);
  connected.push(annClient);
  const annNotified = nextEvent(annClient, 'notification.message_new', (e) => e.message?.campaign_id != null, 30_000);

  const name = uid('promo');
  const campaign = admin.campaign({
    name,
    sender_id: sender,
    segment_ids: [segment.id],
    create_channels: true,
    channel_template: { type: 'messaging', id: '{{ receiver.id }}-promo', custom: { source: 'js' } },
    message_template: { text: 'Hi {{ receiver.name }}, {{ sender.name }} here' },
  });
  const created = await campaign.create();
  assert.ok(created.campaign.id);
  assert.equal(campaign.id, created.campaign.id);
  assert.equal(campaign.data.status, 'draft');
  assert.equal(created.campaign.name, name);
  assert.deepEqual(created.campaign.segment_ids, [segment.id]);
  assert.equal(created.campaign.stats.stats_messages_sent, 0);
  assert.ok(created.users && typeof created.users === 'object');

  const started = await campaign.start();
  assert.ok(['in_progress', 'completed'].includes(started.campaign.status), started.campaign.status);
  const done = await waitFor(campaign, ['completed']);
  assert.equal(done.stats.stats_messages_sent, 2);
  assert.equal(done.stats.stats_channels_created, 2);
  assert.equal(done.stats.stats_users_sent, 2);
  assert.equal(done.stats.progress, 1);
  assert.ok(done.stats.stats_completed_at);

  const note = await annNotified;
  assert.equal(note.message.text, 'Hi Ann, Sue here');
  assert.equal(note.message.campaign_id, campaign.id);
  assert.equal(note.channel.cid, `messaging:${ann}-promo`);

  const [state] = await admin.queryChannels({ cid: `messaging:${bob}-promo` }, {}, { limit: 1 });
  assert.equal(state.data.source, 'js');
  const messages = state.state.messages;
  assert.equal(messages.length, 1);
  assert.equal(messages[0].text, 'Hi Bob, Sue here');
  assert.equal(messages[0].campaign_id, campaign.id);
  assert.equal(messages[0].user.id, sender);
  assert.deepEqual(Object.keys(state.state.members).sort(), [bob, sender].sort());

  const { campaigns } = await admin.queryCampaigns({ id: { $eq: campaign.id } }, [{ field: 'created_at', direction: -1 }], { limit: 10 });
  assert.equal(campaigns.length, 1);
  assert.equal(campaigns[0].id, campaign.id);
  assert.equal(campaigns[0].status, 'completed');
  const bySegment = await admin.queryCampaigns({ segments: { $in: [segment.id] } });
  assert.deepEqual(bySegment.campaigns.map((c) => c.id), [campaign.id]);

  // A second campaign to user_ids: scheduled, its users paged, stopped with no body.
  const later = admin.campaign({ sender_id: sender, user_ids: [ann, bob], message_template: { text: 'later' } });
  await later.create();
  const scheduledFor = new Date(Date.now() + 3600_000).toISOString();
  const stopAt = new Date(Date.now() + 7200_000).toISOString();
  const scheduled = await later.start({ scheduledFor, stopAt });
  assert.equal(scheduled.campaign.status, 'scheduled');
  assert.equal(new Date(scheduled.campaign.scheduled_for).toISOString(), scheduledFor);
  assert.equal(new Date(scheduled.campaign.stop_at).toISOString(), stopAt);
  const page1 = await later.get({ users: { limit: 1 } });
  assert.deepEqual(page1.campaign.users.map((u) => u.id), [ann]);
  assert.ok(page1.users.next, JSON.stringify(page1.users));
  const page2 = await later.get({ users: { limit: 1, next: page1.users.next } });
  assert.deepEqual(page2.campaign.users.map((u) => u.id), [bob]);
  const active = await admin.queryCampaigns({ status: { $in: ['scheduled', 'in_progress'] }, sender_id: sender });
  assert.deepEqual(active.campaigns.map((c) => c.id), [later.id]);

  const stopped = await later.stop();
  assert.equal(stopped.campaign.id, later.id);
  assert.equal(stopped.campaign.status, 'stopped');
  await assert.rejects(later.start(), (err) => err.response?.status === 400);
  const updated = later.update({ sender_id: sender, message_template: { text: 'changed' } });
  await assert.rejects(updated, (err) => err.response?.status === 400);

  await later.delete();
  await campaign.delete();
  await assert.rejects(later.get(), (err) => err.response?.status === 404);
  const gone = await admin.queryCampaigns({ id: { $in: [campaign.id, later.id] } });
  assert.deepEqual(gone.campaigns, []);
  await admin.deleteSegment(segment.id);
});

test('a draft campaign is updated through the class, and refused without a sender', async () => {
  const sender = uid('s');
  await admin.upsertUser({ id: sender });
  const campaign = admin.campaign({ sender_id: sender, user_ids: [sender], message_template: { text: 'v1' }, name: 'v1' });
  await campaign.create();
  const updated = await campaign.update({ sender_id: sender, message_template: { text: 'v2' }, name: 'v2' });
  assert.equal(updated.campaign.name, 'v2');
  assert.equal(updated.campaign.message_template.text, 'v2');
  assert.equal((await campaign.get()).campaign.message_template.text, 'v2');
  await campaign.delete();

  const bad = admin.campaign({ message_template: { text: 'x' } });
  await assert.rejects(bad.create(), (err) => err.response?.status === 400 && /sender_id/.test(err.message));
  assert.equal(bad.id, null);
});
