// Link previews through the official npm stream-chat client: `client.enrichURL` (what the
// message composer calls for each link typed) answers a page's Open Graph preview; a member's
// `channel.sendMessage` with a link reaches the other member's `message.new` with the preview
// attached; with `async_url_enrich_enabled` the send answers without it and `message.updated`
// brings it. Pages come from a loopback site; chat-local may reach it through
// CHAT_URL_PREVIEW_ALLOW=127.0.0.1 (without it, the SSRF guard refuses loopback links).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { StreamChat } from 'stream-chat';
import { connectAs, nextEvent, startServer, uid } from './harness.js';

const ALLOW = { CHAT_URL_PREVIEW_ALLOW: '127.0.0.1' };
let site; // { base, hits(path) }
let sync; // chat-local enriching before the send answers: { server, admin }
let deferred; // chat-local with async_url_enrich_enabled

const og = (tags) =>
  '<!doctype html><html><head><title>Plain</title>' +
  Object.entries(tags)
    .map(([k, v]) => `<meta property="${k}" content="${v}">`)
    .join('') +
  '</head><body><p>hello</p></body></html>';

function startSite() {
  const requests = [];
  const srv = http.createServer((req, res) => {
    requests.push(req.url);
    const { pathname, searchParams } = new URL(req.url, 'http://x');
    const base = `http://127.0.0.1:${srv.address().port}`;
    const pages = {
      '/article': [
        'text/html; charset=utf-8',
        og({
          'og:title': 'Harbour lights',
          'og:description': 'Boats at dusk.',
          'og:image': '/img/cover.png',
          'og:site_name': 'Loopback Gazette',
          'og:url': `${base}/canonical/harbour`,
        }),
      ],
      '/video': [
        'text/html',
        og({ 'og:title': 'Launch', 'og:video': `${base}/launch.mp4`, 'og:image': `${base}/poster.jpg` }),
      ],
      '/doc.pdf': ['application/pdf', '%PDF-1.4\n' + '0'.repeat(200)],
    };
    const page = pages[pathname];
    const answer = () => {
      if (!page) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'Content-Type': page[0] }).end(page[1]);
    };
    // `?delay=ms` holds the answer (the async test's page takes a while).
    setTimeout(answer, Number(searchParams.get('delay') ?? 0));
  });
  return new Promise((resolve) =>
    srv.listen(0, '127.0.0.1', () =>
      resolve({
        base: `http://127.0.0.1:${srv.address().port}`,
        hits: (path) => requests.filter((u) => u.split('?')[0] === path).length,
        close: () =>
          new Promise((r) => {
            srv.close(r);
            srv.closeAllConnections(); // chat-local keeps its fetches' connections alive
          }),
      }),
    ),
  );
}

async function chat(settings) {
  const server = await startServer({ env: ALLOW });
  const admin = new StreamChat(server.apiKey, server.apiSecret, { baseURL: server.url });
  if (settings) await admin.updateAppSettings(settings);
  return { server, admin };
}

before(async () => {
  site = await startSite();
  [sync, deferred] = await Promise.all([chat(), chat({ async_url_enrich_enabled: true })]);
});

after(async () => {
  await Promise.all([sync.server.stop(), deferred.server.stop(), site.close()]);
});

// Two connected members of a new messaging channel, both watching it.
async function pair({ server, admin }) {
  const [a, b] = [uid('alice'), uid('bob')];
  await admin.upsertUsers([{ id: a }, { id: b }]);
  await admin.channel('messaging', uid('lp'), { members: [a, b], created_by_id: a }).create();
  const alice = await connectAs(server, admin, a);
  const bob = await connectAs(server, admin, b);
  const [chA] = await alice.queryChannels({ members: { $in: [a] } }, {}, { watch: true });
  const chB = bob.channel(chA.type, chA.id);
  await chB.watch();
  return { alice, bob, chA, chB, close: () => Promise.all([alice.disconnectUser(), bob.disconnectUser()]) };
}

const articlePreview = (url) => ({
  type: 'article',
  author_name: 'Loopback Gazette',
  title: 'Harbour lights',
  title_link: `${site.base}/canonical/harbour`,
  text: 'Boats at dusk.',
  image_url: `${site.base}/img/cover.png`,
  thumb_url: `${site.base}/img/cover.png`,
  og_scrape_url: url,
});

test('enrichURL answers the Open Graph preview of a link', async () => {
  const id = uid('composer');
  const user = await connectAs(sync.server, sync.admin, id);
  try {
    const url = `${site.base}/article`;
    // The composer drops `duration` and keeps the rest as the attachment.
    const { duration, ...attachment } = await user.enrichURL(url);
    assert.equal(typeof duration, 'string');
    assert.deepEqual(attachment, articlePreview(url));
    const video = await sync.admin.enrichURL(`${site.base}/video`);
    assert.equal(video.type, 'video');
    assert.equal(video.asset_url, `${site.base}/launch.mp4`);
    // No preview for a PDF: the composer marks the link failed.
    await assert.rejects(user.enrichURL(`${site.base}/doc.pdf`), (err) => {
      assert.equal(err.code, 4, err.message);
      assert.equal(err.status, 400, err.message);
      return true;
    });
  } finally {
    await user.disconnectUser();
  }
});

test("a member's link reaches the other member with its preview", async () => {
  const { chA, chB, close } = await pair(sync);
  try {
    const url = `${site.base}/article`;
    const received = nextEvent(chB, 'message.new');
    const { message } = await chA.sendMessage({ text: `look ${url} and ${site.base}/video` });
    assert.deepEqual(message.attachments, [articlePreview(url)]);
    const event = await received;
    assert.equal(event.message.id, message.id);
    assert.deepEqual(event.message.attachments, [articlePreview(url)]);
    const copy = chB.state.messages.find((m) => m.id === message.id);
    assert.equal(copy.attachments[0].og_scrape_url, url);

    // skip_enrich_url: no preview, and the page is not fetched.
    const before = site.hits('/video');
    const quiet = nextEvent(chB, 'message.new');
    const skipped = await chA.sendMessage({ text: `${site.base}/video` }, { skip_enrich_url: true });
    assert.deepEqual(skipped.message.attachments, []);
    assert.deepEqual((await quiet).message.attachments, []);
    assert.equal(site.hits('/video'), before);
  } finally {
    await close();
  }
});

test('async_url_enrich_enabled: message.updated brings the preview', async () => {
  const { chA, chB, close } = await pair(deferred);
  try {
    const url = `${site.base}/article?delay=800&m=${uid('m')}`;
    const received = nextEvent(chB, 'message.new');
    const mine = (e) => e.message.text === `later ${url}`;
    const [updated, ownUpdate] = [nextEvent(chB, 'message.updated', mine), nextEvent(chA, 'message.updated', mine)];
    const started = Date.now();
    const { message } = await chA.sendMessage({ text: `later ${url}` });
    assert.ok(Date.now() - started < 700, 'the send waited for the page');
    assert.deepEqual(message.attachments, []);
    assert.deepEqual((await received).message.attachments, []);
    const event = await updated;
    assert.equal(event.message.id, message.id);
    assert.deepEqual(event.message.attachments, [articlePreview(url)]);
    const copy = chB.state.messages.find((m) => m.id === message.id);
    assert.deepEqual(copy.attachments, [articlePreview(url)]);
    await ownUpdate;
    const own = chA.state.messages.find((m) => m.id === message.id);
    assert.deepEqual(own.attachments, [articlePreview(url)]);
    const { message: stored } = await deferred.admin.getMessage(message.id);
    assert.deepEqual(stored.attachments, [articlePreview(url)]);
  } finally {
    await close();
  }
});
