// Uploads from the official npm stream-chat client, user-side over WebSocket as the UI kits do
// them: `channel.sendFile` / `channel.sendImage` (multipart) answer a signed link that carries the
// file name and serves the same bytes with no token (a link with another signature serves
// nothing); an image's `thumb_url` serves a PNG of at most 300x300, and `w`/`h`/`resize` added
// to the link make other sizes; a message with the image attachment reaches the other member's
// WebSocket as message.new and its thumbnail loads; the uploader's `deleteFile` / `deleteImage`
// takes the link down (404), another member's is refused (403) and leaves it up; a non-member
// cannot upload to a messaging channel; an image upload that is no image is refused; the
// client's `uploadFile` / `uploadImage` / `deleteFile` / `deleteImage` do the same on /uploads/*.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectAs, nextEvent, uid, useServer } from './harness.js';
import { png, pngSize } from './png.js';

let server;
let admin;
useServer((s, c) => {
  server = s;
  admin = c;
});

const connect = async (id) => {
  const client = await connectAs(server, admin, id);
  connected.push(client);
  return client;
};

// A messaging channel of `owner` and `member` (both connected and watching) and a connected
// `outsider` who is no member.
async function scene() {
  const ids = { owner: uid('own'), member: uid('mem'), outsider: uid('out') };
  await admin.upsertUsers(Object.values(ids).map((id) => ({ id })));
  const id = uid('room');
  await admin.channel('messaging', id, { members: [ids.owner, ids.member], created_by_id: ids.owner }).create();
  const clients = {};
  for (const [who, user] of Object.entries(ids)) clients[who] = await connect(user);
  const watching = {};
  for (const who of ['owner', 'member']) {
    watching[who] = clients[who].channel('messaging', id);
    await watching[who].watch();
  }
  return { id, ids, clients, watching };
}

async function disconnect(clients) {
  for (const client of Object.values(clients)) await client.disconnectUser();
}

// Every client a test connected is disconnected after the file, also when a test failed before
// its own disconnect (an open socket would keep the test process alive).
const connected = [];
after(async () => {
  for (const client of connected) await client.disconnectUser();
});

// A link without its expiry and signature: which upload, with which parameters.
function sameUpload(url) {
  const u = new URL(url);
  u.searchParams.delete('expires');
  u.searchParams.delete('signature');
  return u.href;
}

// GET a link with no credentials: status, content type and body.
async function get(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, type: res.headers.get('content-type'), body: Buffer.from(await res.arrayBuffer()) };
}

// Asserts `promise` rejects with HTTP `status`.
async function refused(promise, status) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.status, status, err.message);
    return true;
  });
}

// Asserts `url` is one of chat-local's upload links, for a file called `name`.
function assertLink(url, name) {
  assert.equal(typeof url, 'string');
  const u = new URL(url);
  assert.equal(u.origin, server.url);
  assert.match(u.pathname, new RegExp(`^/files/uploads/[^/]+/${name.replace('.', '\\.')}$`));
  assert.ok(u.searchParams.get('expires') && u.searchParams.get('signature'), url);
}

test('members of a messaging channel may upload files', async () => {
  const { clients, watching } = await scene();
  assert.ok(watching.owner.data.own_capabilities.includes('upload-file'), watching.owner.data.own_capabilities);
  assert.ok(watching.member.data.own_capabilities.includes('upload-file'), watching.member.data.own_capabilities);
  await disconnect(clients);
});

test('sendFile answers a link that serves the same bytes without a token', async () => {
  const { clients, watching } = await scene();
  const text = Buffer.from(`notes ${uid('n')}\nline two\n`);
  const res = await watching.owner.sendFile(text, 'notes.txt', 'text/plain');
  assertLink(res.file, 'notes.txt');
  assert.equal(typeof res.duration, 'string');
  assert.equal(res.thumb_url, undefined);

  const got = await get(res.file);
  assert.equal(got.status, 200);
  assert.match(got.type, /^text\/plain/);
  assert.ok(got.body.equals(text), got.body.toString());

  // The link is the credential: another signature, or the signature on another file, is 404.
  const forged = new URL(res.file);
  const sig = forged.searchParams.get('signature');
  forged.searchParams.set('signature', (sig[0] === '0' ? '1' : '0') + sig.slice(1));
  assert.equal((await get(forged.href)).status, 404);
  const other = new URL(res.file);
  other.pathname = other.pathname.replace('notes.txt', 'other.txt');
  assert.equal((await get(other.href)).status, 404);
  await disconnect(clients);
});

test('sendImage: the link serves the PNG, the thumbnail is a smaller PNG, w/h/resize make other sizes', async () => {
  const { clients, watching } = await scene();
  const image = png(640, 480, 1);
  const res = await watching.owner.sendImage(image, 'photo.png', 'image/png');
  assertLink(res.file, 'photo.png');
  assertLink(res.thumb_url, 'photo.png');
  assert.equal(new URL(res.file).searchParams.get('ow'), '640');
  assert.equal(new URL(res.file).searchParams.get('oh'), '480');

  const got = await get(res.file);
  assert.equal(got.status, 200);
  assert.equal(got.type, 'image/png');
  assert.ok(got.body.equals(image), 'the original bytes');

  const thumb = await get(res.thumb_url);
  assert.equal(thumb.status, 200);
  assert.equal(thumb.type, 'image/png');
  const t = pngSize(thumb.body);
  assert.ok(t.width <= 300 && t.height <= 300, JSON.stringify(t));
  assert.deepEqual(t, { width: 300, height: 225 }); // clipped into 300x300, aspect kept

  const cropped = new URL(res.file);
  for (const [k, v] of Object.entries({ w: '64', h: '64', resize: 'crop', crop: 'top' })) cropped.searchParams.set(k, v);
  const small = await get(cropped.href);
  assert.equal(small.status, 200);
  assert.deepEqual(pngSize(small.body), { width: 64, height: 64 });
  await disconnect(clients);
});

test('a message with the uploaded image reaches the other member, whose thumbnail loads', async () => {
  const { ids, clients, watching } = await scene();
  const image = png(800, 400, 2);
  const res = await watching.owner.sendImage(image, 'wide.png', 'image/png');
  const text = uid('look');
  const heard = nextEvent(watching.member, 'message.new', (e) => e.message?.text === text);
  const { message } = await watching.owner.sendMessage({
    text,
    attachments: [{ type: 'image', image_url: res.file, thumb_url: res.thumb_url }],
  });
  assert.equal(message.attachments.length, 1);
  assert.equal(sameUpload(message.attachments[0].image_url), sameUpload(res.file));

  const event = await heard;
  assert.equal(event.user.id, ids.owner);
  assert.equal(event.message.attachments.length, 1);
  const [attachment] = event.message.attachments;
  assert.equal(attachment.type, 'image');
  // Messages carry their upload links signed anew (renewed on every read): same file, same
  // parameters, another expiry.
  assert.equal(sameUpload(attachment.image_url), sameUpload(res.file));
  assert.equal(sameUpload(attachment.thumb_url), sameUpload(res.thumb_url));

  const thumb = await get(attachment.thumb_url);
  assert.equal(thumb.status, 200);
  assert.equal(thumb.type, 'image/png');
  const t = pngSize(thumb.body);
  assert.ok(t.width <= 300 && t.height <= 300, JSON.stringify(t));
  assert.ok((await get(attachment.image_url)).body.equals(image));

  // Stored: the member's fresh query has the attachment too.
  const { messages } = await watching.member.query({ messages: { limit: 5 } });
  const stored = messages.find((m) => m.text === text);
  assert.equal(sameUpload(stored.attachments[0].image_url), sameUpload(res.file));
  await disconnect(clients);
});

test('the uploader deletes a file or an image: its link is 404 after', async () => {
  const { clients, watching } = await scene();
  const file = await watching.owner.sendFile(Buffer.from('to delete'), 'gone.txt', 'text/plain');
  const image = await watching.owner.sendImage(png(40, 30, 3), 'gone.png', 'image/png');
  assert.equal((await get(file.file)).status, 200);
  assert.equal((await get(image.file)).status, 200);

  await watching.owner.deleteFile(file.file);
  await watching.owner.deleteImage(image.file);
  assert.equal((await get(file.file)).status, 404);
  assert.equal((await get(image.file)).status, 404);
  assert.equal((await get(image.thumb_url)).status, 404);
  // Gone: deleting again is 404.
  await refused(watching.owner.deleteFile(file.file), 404);
  await disconnect(clients);
});

test("another member may not delete someone else's upload", async () => {
  const { clients, watching } = await scene();
  const bytes = Buffer.from('mine, not yours');
  const file = await watching.owner.sendFile(bytes, 'mine.txt', 'text/plain');
  const image = await watching.owner.sendImage(png(20, 20, 4), 'mine.png', 'image/png');
  await refused(watching.member.deleteFile(file.file), 403);
  await refused(watching.member.deleteImage(image.file), 403);
  const still = await get(file.file);
  assert.equal(still.status, 200);
  assert.ok(still.body.equals(bytes));
  assert.equal((await get(image.file)).status, 200);
  await disconnect(clients);
});

test('a non-member cannot upload to a messaging channel', async () => {
  const { id, clients } = await scene();
  const channel = clients.outsider.channel('messaging', id);
  await refused(channel.sendFile(Buffer.from('let me in'), 'intruder.txt', 'text/plain'), 403);
  await refused(channel.sendImage(png(10, 10), 'intruder.png', 'image/png'), 403);
  await disconnect(clients);
});

test('an image upload that is not an image is refused', async () => {
  const { clients, watching } = await scene();
  await refused(watching.owner.sendImage(Buffer.from('not a png at all'), 'fake.png', 'image/png'), 400);
  await disconnect(clients);
});

test("the client's uploadFile / uploadImage go to /uploads/*; only the uploader deletes them", async () => {
  const { clients } = await scene();
  for (const method of ['uploadFile', 'uploadImage', 'deleteFile', 'deleteImage']) {
    assert.equal(typeof clients.owner[method], 'function', method);
  }
  const bytes = Buffer.from(`standalone ${uid('s')}`);
  const file = await clients.owner.uploadFile(bytes, 'standalone.txt', 'text/plain');
  assertLink(file.file, 'standalone.txt');
  const gotFile = await get(file.file);
  assert.equal(gotFile.status, 200);
  assert.ok(gotFile.body.equals(bytes));

  const image = png(500, 500, 5);
  const img = await clients.owner.uploadImage(image, 'square.png', 'image/png');
  assertLink(img.file, 'square.png');
  assert.ok((await get(img.file)).body.equals(image));
  const thumb = await get(img.thumb_url);
  assert.equal(thumb.status, 200);
  assert.deepEqual(pngSize(thumb.body), { width: 300, height: 300 });

  // A standalone upload is no channel's: the channel routes don't know it.
  await refused(clients.owner.channel('messaging', uid('nowhere')).deleteFile(file.file), 404);

  await refused(clients.member.deleteFile(file.file), 403);
  await refused(clients.member.deleteImage(img.file), 403);
  assert.equal((await get(file.file)).status, 200);

  await clients.owner.deleteFile(file.file);
  await clients.owner.deleteImage(img.file);
  assert.equal((await get(file.file)).status, 404);
  assert.equal((await get(img.file)).status, 404);
  await disconnect(clients);
});
