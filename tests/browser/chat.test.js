// End-to-end in a real browser: Stream's React UI kit (stream-chat-react, unmodified, bundled
// with esbuild at test time) runs in headless Chromium (@sparticuz/chromium driven by
// puppeteer-core) against chat-local. The page is served from a different loopback origin, so
// every REST call is cross-origin (CORS preflights included) and the WebSocket carries the
// events. Proves that a message typed into user A's MessageInput and sent with Enter appears in
// user B's MessageList, and that B's reply appears in A's; and that an image A attaches through
// the MessageInput's file input uploads to chat-local (cross-origin, multipart), is sent, and
// shows in B's MessageList as an <img> from chat-local's /files/uploads/ link that has loaded;
// and that with the README's custom upload hook (setMessageComposerSetupFunction +
// attachmentManager.setCustomUploadFn) the same attach goes up through POST /uploads/presign and
// a cross-origin PUT of the raw bytes to the link it answers, with no multipart upload at all.
// On failure it prints the browser console, failed requests and the upload traffic and saves
// screenshots to a temp dir.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import esbuild from 'esbuild';
import chromium from '@sparticuz/chromium';
import puppeteer from 'puppeteer-core';
import { png, pngSize } from '../js/png.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const binary = process.env.CHAT_LOCAL_BIN ?? path.join(root, 'target', 'debug', 'chat-local');
const rand = (p) => `${p}-${crypto.randomBytes(5).toString('hex')}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-browser-'));
const log = []; // browser console, page errors and failed requests, printed on failure

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// HS256 JWT signed with the app secret.
function jwt(payload, secret) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(payload)}`;
  return `${body}.${crypto.createHmac('sha256', secret).update(body).digest('base64url')}`;
}

const withTimeout = (promise, ms, what) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms).unref()),
  ]);

// The README's custom upload hook (Stream's documented MessageComposer setup function and
// AttachmentManager.setCustomUploadFn): attachments go up through POST /uploads/presign and a PUT
// of the raw bytes to the link it answers, instead of the SDK's multipart POST.
const presignHook = `client.setMessageComposerSetupFunction(({ composer }) => {
  composer.attachmentManager.setCustomUploadFn(async (file) => {
    const { channel } = composer;
    const res = await client.post(\`\${client.baseURL}/uploads/presign\`, {
      kind: file.type.startsWith('image/') ? 'image' : 'file',
      name: file.name, content_type: file.type, size: file.size,
      channel_type: channel.type, channel_id: channel.id,
    });
    const put = await fetch(res.upload_url, { method: 'PUT', headers: { 'Content-Type': res.headers['Content-Type'] }, body: file });
    if (!put.ok) throw new Error(\`upload failed: \${put.status}\`);
    return { file: res.file, thumb_url: res.thumb_url };
  });
});`;

// The page: the UI kit as its docs show it, for the user, token and base URL in the query string.
const app = `
import React from 'react';
import { createRoot } from 'react-dom/client';
import { StreamChat } from 'stream-chat';
import { Chat, Channel, Window, MessageList, MessageInput } from 'stream-chat-react';
import 'stream-chat-react/dist/css/v2/index.css';
const q = new URLSearchParams(location.search);
const client = new StreamChat(q.get('key'), { baseURL: q.get('base') });
// With ?presign=1: the README's custom upload hook, verbatim (the test checks the README has it).
if (q.get('presign') === '1') {
${presignHook}
}
client.connectUser({ id: q.get('user') }, q.get('token')).then(
  () => {
    const channel = client.channel('messaging', q.get('channel'));
    createRoot(document.getElementById('root')).render(
      <Chat client={client}>
        <Channel channel={channel}>
          <Window>
            <MessageList />
            <MessageInput focus />
          </Window>
        </Channel>
      </Chat>,
    );
  },
  (err) => console.error('connectUser failed: ' + (err && err.stack ? err.stack : err)),
);
`;

const INPUT = '.str-chat__message-input textarea';
let chat; // { url, key, secret, child }
let pageServer;
let pageOrigin;
let browser;
let failed = false; // keeps the temp dir (screenshots, bundle) for a look afterwards

async function startChat() {
  const port = await freePort();
  const key = rand('key');
  const secret = rand('secret');
  const { CHAT_CORS_ORIGINS, ...env } = process.env; // the default (any origin) is under test
  const child = spawn(binary, ['--port', String(port), '--in-memory'], {
    env: { ...env, CHAT_API_KEY: key, CHAT_API_SECRET: secret, RUST_LOG: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`chat-local exited with ${child.exitCode}`);
    const ok = await fetch(url + '/health').then((r) => r.ok, () => false);
    if (ok) return { url, key, secret, child };
    if (Date.now() > deadline) throw new Error('chat-local did not become healthy within 30 s');
    await sleep(100);
  }
}

// A REST call with a server token; throws with the body on a non-2xx answer.
async function api(method, route, body) {
  const res = await fetch(`${chat.url}${route}?api_key=${chat.key}`, {
    method,
    headers: { Authorization: jwt({ server: true }, chat.secret), 'stream-auth-type': 'jwt', 'Content-Type': 'application/json' },
    body: body && JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${route} -> ${res.status} ${text}`);
  return JSON.parse(text);
}

before(async () => {
  chat = await startChat();

  // The bundle and the page, served from another origin.
  await esbuild.build({
    stdin: { contents: app, resolveDir: here, loader: 'jsx', sourcefile: 'app.jsx' },
    bundle: true,
    outfile: path.join(tmp, 'app.js'),
    format: 'esm',
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"production"' },
    loader: Object.fromEntries(['.eot', '.svg', '.ttf', '.woff', '.woff2', '.png'].map((e) => [e, 'file'])),
    logLevel: 'error',
  });
  fs.writeFileSync(
    path.join(tmp, 'index.html'),
    '<!doctype html><meta charset="utf-8"><link rel="stylesheet" href="/app.css">' +
      '<body style="margin:0;height:100vh"><div id="root" style="height:100%"></div>' +
      '<script type="module" src="/app.js"></script>',
  );
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
  pageServer = http.createServer((req, res) => {
    const name = path.basename(new URL(req.url, 'http://x').pathname) || 'index.html';
    const file = path.join(tmp, name);
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) return res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': types[path.extname(name)] ?? 'application/octet-stream' });
    res.end(fs.readFileSync(file));
  });
  const pagePort = await freePort();
  await new Promise((r) => pageServer.listen(pagePort, '127.0.0.1', r));
  // localhost vs 127.0.0.1 and another port: a different origin from chat-local's in every way.
  pageOrigin = `http://localhost:${pagePort}`;

  // chromium.args minus the flags that switch off the same-origin policy (and with it the CORS
  // checks this test exists for) and minus --single-process, which crashes Chromium as soon as
  // a second browser context opens a page; puppeteer passes the headless flag itself.
  const dropped = new Set(['--disable-web-security', '--allow-running-insecure-content', '--single-process']);
  const args = chromium.args.filter((a) => !dropped.has(a) && !a.startsWith('--headless'));
  browser = await puppeteer.launch({
    executablePath: await chromium.executablePath(),
    headless: 'shell',
    timeout: 30_000,
    protocolTimeout: 30_000,
    args: [
      ...args,
      ...['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
      ...['--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
      `--user-data-dir=${fs.mkdtempSync(path.join(tmp, 'profile-'))}`,
    ],
  });
}, { timeout: 90_000 });

after(async () => {
  await withTimeout(browser?.close() ?? Promise.resolve(), 10_000, 'browser.close').catch(() => {
    browser?.process()?.kill('SIGKILL');
  });
  pageServer?.closeAllConnections();
  await new Promise((r) => (pageServer ? pageServer.close(r) : r()));
  if (chat && chat.child.exitCode === null) {
    const exited = new Promise((r) => chat.child.once('exit', r));
    chat.child.kill('SIGTERM');
    await withTimeout(exited, 5_000, 'chat-local exit').catch(() => chat.child.kill('SIGKILL'));
  }
  if (!failed) fs.rmSync(tmp, { recursive: true, force: true });
}, { timeout: 30_000 });

// A page (own browser context) for `user` in `pages[label]`, its console and failures logged,
// every answered or failed request in `page.network` ({ method, url, status, request, response }).
// `extra` adds to the page's query string (`{ presign: '1' }` installs the presign upload hook).
async function open(pages, label, user, channelId, extra = {}) {
  const context = await browser.createBrowserContext();
  const page = (pages[label] = await context.newPage());
  page.network = [];
  page.setDefaultTimeout(20_000);
  page.on('console', (m) => log.push(`[${label} console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[${label} pageerror] ${e.stack ?? e}`));
  page.on('requestfailed', (r) => {
    log.push(`[${label} failed] ${r.method()} ${r.url()} ${r.failure()?.errorText}`);
    page.network.push({ method: r.method(), url: r.url(), status: null, request: r, failure: r.failure()?.errorText });
  });
  page.on('response', (r) => {
    page.network.push({ method: r.request().method(), url: r.url(), status: r.status(), request: r.request(), response: r });
    const upload = /\/(file|image|presign)(\?|$)|\/files\//.test(r.url());
    if (r.status() >= 400 || upload) {
      const h = r.headers();
      const shown = ['content-type', 'access-control-allow-origin', 'content-security-policy', 'x-content-type-options']
        .filter((k) => h[k])
        .map((k) => `${k}: ${h[k]}`)
        .join('; ');
      log.push(`[${label} response] ${r.request().method()} ${r.url()} -> ${r.status()} (${shown})`);
    }
  });
  const token = jwt({ user_id: user }, chat.secret);
  const query = new URLSearchParams({ key: chat.key, base: chat.url, user, token, channel: channelId, ...extra });
  await page.goto(`${pageOrigin}/index.html?${query}`, { waitUntil: 'load' });
  await page.waitForSelector(INPUT);
  return page;
}

// Two users in a new messaging channel; `body(pages, ids)` opens their pages with `open`. On a
// failure: screenshots, and the browser log printed. The pages' contexts are closed after.
let scenarios = 0;
async function scenario(body) {
  const n = ++scenarios;
  const [a, b, channelId] = [rand('alice'), rand('bob'), rand('room')];
  await api('POST', '/users', { users: { [a]: { id: a, name: 'Alice' }, [b]: { id: b, name: 'Bob' } } });
  await api('POST', `/channels/messaging/${channelId}/query`, { data: { created_by_id: a, members: [a, b] } });
  log.length = 0;
  const pages = {};
  try {
    await body(pages, { a, b, channelId });
  } catch (err) {
    failed = true;
    for (const [label, page] of Object.entries(pages)) {
      const file = path.join(tmp, `failure-${n}-${label}.png`);
      await withTimeout(page.screenshot({ path: file, fullPage: true }), 10_000, 'screenshot').then(
        () => log.push(`[screenshot] ${file}`),
        (e) => log.push(`[screenshot ${label} failed] ${e.message}`),
      );
    }
    console.error(`--- browser log ---\n${log.join('\n')}\n--- end browser log ---`);
    throw err;
  } finally {
    for (const page of Object.values(pages)) {
      await withTimeout(page.browserContext().close(), 10_000, 'context.close').catch(() => {});
    }
  }
}

async function send(page, text) {
  const input = await page.waitForSelector(INPUT);
  await input.type(text);
  await page.keyboard.press('Enter');
}

// Waits (up to 20 s) for `text` in the page's MessageList.
async function expectMessage(page, text) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll('.str-chat__list .str-chat__message-text')].some((e) => e.textContent.includes(t)),
    { timeout: 20_000 },
    text,
  );
}

test('a message typed in one browser appears in the other, and the reply comes back', { timeout: 120_000 }, async () => {
  await scenario(async (pages, { a, b, channelId }) => {
    await open(pages, 'A', a, channelId);
    await open(pages, 'B', b, channelId);

    const hello = rand('hello from A');
    await send(pages.A, hello);
    await expectMessage(pages.A, hello);
    await expectMessage(pages.B, hello);

    const reply = rand('reply from B');
    await send(pages.B, reply);
    await expectMessage(pages.B, reply);
    await expectMessage(pages.A, reply);
  });
});

// The <img> elements (src, load state) of the MessageList message whose text has `text`, once
// one of them has loaded from chat-local's upload links (up to 30 s).
// Attaches `file` through the MessageInput's file input and waits until its preview shows it
// from chat-local; answers the prefix of chat-local's upload links.
async function attachImage(page, file) {
  const chooser = await page.waitForSelector('.str-chat__message-input input[type=file]', { timeout: 20_000 });
  await chooser.uploadFile(file);
  const uploads = `${chat.url}/files/uploads/`;
  await page.waitForFunction(
    (prefix) => {
      const preview = document.querySelector('.str-chat__attachment-preview-image');
      if (!preview || preview.querySelector('.str-chat__attachment-preview-image-loading')) return false;
      const img = preview.querySelector('img');
      return !!img && img.src.startsWith(prefix);
    },
    { timeout: 30_000, polling: 200 },
    uploads,
  );
  return uploads;
}

async function expectLoadedImage(page, text) {
  const uploads = `${chat.url}/files/uploads/`;
  const handle = await page.waitForFunction(
    (t, prefix) => {
      const message = [...document.querySelectorAll('.str-chat__list .str-chat__message')].find((m) =>
        [...m.querySelectorAll('.str-chat__message-text')].some((e) => e.textContent.includes(t)),
      );
      if (!message) return null;
      const images = [...message.querySelectorAll('img')].map((img) => ({
        src: img.src,
        complete: img.complete,
        naturalWidth: img.naturalWidth,
        naturalHeight: img.naturalHeight,
        failed: img.classList.contains('str-chat__base-image--load-failed'),
      }));
      const loaded = images.some((i) => i.src.startsWith(prefix) && i.complete && i.naturalWidth > 0 && !i.failed);
      return loaded ? images : null;
    },
    { timeout: 30_000, polling: 200 },
    text,
    uploads,
  );
  return handle.jsonValue();
}

test('an image attached in one browser uploads to chat-local and shows, loaded, in the other', { timeout: 120_000 }, async () => {
  await scenario(async (pages, { a, b, channelId }) => {
    await open(pages, 'A', a, channelId);
    await open(pages, 'B', b, channelId);
    const name = `${rand('photo')}.png`;
    const file = path.join(tmp, name);
    fs.writeFileSync(file, png(480, 320, 7));

    // The MessageInput offers uploads (the channel's own_capabilities has upload-file): its
    // file input takes the PNG, and the preview shows it once uploaded to chat-local.
    const uploads = await attachImage(pages.A, file);

    const caption = rand('picture from A');
    await send(pages.A, caption);
    await expectMessage(pages.A, caption);
    await expectMessage(pages.B, caption);

    const images = await expectLoadedImage(pages.B, caption);
    const shown = images.find((i) => i.src.startsWith(uploads) && i.naturalWidth > 0);
    const link = new URL(shown.src);
    assert.match(link.pathname, new RegExp(`^/files/uploads/[^/]+/${name.replace('.', '\\.')}$`), shown.src);
    assert.ok(link.searchParams.get('expires') && link.searchParams.get('signature'), shown.src);

    // The link B's page shows serves a PNG (as sized for the list, if it asked for a size).
    const res = await fetch(shown.src, { signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    const size = pngSize(Buffer.from(await res.arrayBuffer()));
    assert.deepEqual([shown.naturalWidth, shown.naturalHeight], [size.width, size.height]);

    // The author's own list shows it from chat-local too.
    await expectLoadedImage(pages.A, caption);
  });
});

test('with the README upload hook, an image goes up through /uploads/presign and a PUT, and shows, loaded, in the other browser', { timeout: 120_000 }, async () => {
  // The page runs the README's snippet as written.
  assert.ok(fs.readFileSync(path.join(root, 'README.md'), 'utf8').includes(presignHook), 'README has the upload hook the page runs');
  await scenario(async (pages, { a, b, channelId }) => {
    await open(pages, 'A', a, channelId, { presign: '1' });
    await open(pages, 'B', b, channelId);
    const name = `${rand('photo')}.png`;
    const file = path.join(tmp, name);
    const bytes = png(480, 320, 11);
    fs.writeFileSync(file, bytes);

    // Attached through the MessageInput's file input, as in the multipart test; the preview
    // shows it from chat-local once the hook has put it there.
    const uploads = await attachImage(pages.A, file);

    const caption = rand('presigned picture from A');
    await send(pages.A, caption);
    await expectMessage(pages.A, caption);
    await expectMessage(pages.B, caption);

    // (a) A's traffic: one presign POST, one PUT of the bytes to the link it answered, and no
    // multipart upload (A's page is new, so everything it sent belongs to this message).
    const traffic = pages.A.network;
    const shownTraffic = () => traffic.map((r) => `${r.method} ${r.url} -> ${r.status ?? r.failure}`).join('\n');
    const pathOf = (u) => new URL(u).pathname;
    const presigns = traffic.filter((r) => r.method === 'POST' && r.url.startsWith(`${chat.url}/uploads/presign`));
    assert.equal(presigns.length, 1, `one POST /uploads/presign:\n${shownTraffic()}`);
    assert.equal(presigns[0].status, 200, shownTraffic());
    assert.deepEqual(JSON.parse(presigns[0].request.postData()), {
      kind: 'image',
      name,
      content_type: 'image/png',
      size: bytes.length,
      channel_type: 'messaging',
      channel_id: channelId,
    });
    const answer = JSON.parse(await presigns[0].response.text());
    assert.equal(answer.method, 'PUT');
    assert.deepEqual(answer.headers, { 'Content-Type': 'image/png', 'Content-Length': String(bytes.length) });
    assert.ok(answer.upload_url.startsWith(uploads), answer.upload_url);
    assert.ok(answer.file.startsWith(uploads), answer.file);
    assert.equal(pathOf(answer.upload_url), pathOf(answer.file));

    const puts = traffic.filter((r) => r.method === 'PUT');
    assert.equal(puts.length, 1, `one PUT:\n${shownTraffic()}`);
    assert.equal(puts[0].url, answer.upload_url);
    assert.equal(puts[0].status, 200, shownTraffic());
    assert.equal(puts[0].request.headers()['content-type'], 'image/png');

    const multipart = traffic.filter(
      (r) => r.method === 'POST' && /^\/(channels\/[^/]+\/[^/]+|uploads)\/(image|file)$/.test(pathOf(r.url)),
    );
    assert.deepEqual(multipart.map((r) => r.url), [], `no multipart upload:\n${shownTraffic()}`);

    // The message A sent carries the presigned upload's link.
    const sent = traffic.filter((r) => r.method === 'POST' && pathOf(r.url) === `/channels/messaging/${channelId}/message`);
    assert.equal(sent.length, 1, shownTraffic());
    const message = JSON.parse(sent[0].request.postData()).message;
    assert.equal(message.text, caption);
    assert.equal(message.attachments.length, 1, JSON.stringify(message.attachments));
    assert.equal(message.attachments[0].type, 'image');
    assert.equal(pathOf(message.attachments[0].image_url), pathOf(answer.file));

    // (b) B's MessageList shows that upload as an <img> that has loaded from chat-local.
    const images = await expectLoadedImage(pages.B, caption);
    const shown = images.find((i) => i.src.startsWith(uploads) && i.complete && i.naturalWidth > 0 && !i.failed);
    assert.equal(pathOf(shown.src), pathOf(answer.file), shown.src);

    // The bytes A put are the ones `file` serves, and what B shows is that PNG (as sized for the list).
    const original = await fetch(answer.file, { signal: AbortSignal.timeout(10_000) });
    assert.equal(original.status, 200);
    assert.equal(original.headers.get('content-type'), 'image/png');
    assert.ok(Buffer.from(await original.arrayBuffer()).equals(bytes), 'file serves the bytes that were PUT');
    const res = await fetch(shown.src, { signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 200);
    const size = pngSize(Buffer.from(await res.arrayBuffer()));
    assert.deepEqual([shown.naturalWidth, shown.naturalHeight], [size.width, size.height]);

    // The author's own list shows it too.
    await expectLoadedImage(pages.A, caption);
  });
});
