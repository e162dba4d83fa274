// Starts chat-local on a free loopback port (in memory) for a test file, and stops it after.
import { spawn } from 'node:child_process';
import { before, after } from 'node:test';
import { StreamChat } from 'stream-chat';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const binary = process.env.CHAT_LOCAL_BIN ?? path.join(root, 'target', 'debug', 'chat-local');

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

// Options: `port` (a free one by default), `dataDir` (in memory by default), `apiKey` /
// `apiSecret` (random by default), `env` (extra environment).
export async function startServer(options = {}) {
  const port = options.port ?? (await freePort());
  const apiKey = options.apiKey ?? 'jskey' + Math.random().toString(36).slice(2, 8);
  const apiSecret = options.apiSecret ?? 'jssecret-' + Math.random().toString(36).slice(2);
  const storage = options.dataDir ? ['--data-dir', options.dataDir] : ['--in-memory'];
  const child = spawn(binary, ['--port', String(port), ...storage], {
    env: {
      ...process.env,
      CHAT_API_KEY: apiKey,
      CHAT_API_SECRET: apiSecret,
      RUST_LOG: 'warn',
      ...options.env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`chat-local exited with ${child.exitCode}`);
    try {
      const res = await fetch(url + '/health');
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('chat-local did not become healthy within 30 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    port,
    apiKey,
    apiSecret,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', resolve);
        child.kill('SIGTERM');
      }),
  };
}

// The next event of `type` (matching `match`) on a client or channel, or a rejection after
// `timeoutMs`.
export function nextEvent(target, type, match = () => true, timeoutMs = 5000) {
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

// One in-memory chat-local for a test file: started before its tests, stopped after.
// `ready(server, admin)` receives the server and a server-side client (with the secret).
export function useServer(ready) {
  let server;
  before(async () => {
    server = await startServer();
    ready(server, new StreamChat(server.apiKey, server.apiSecret, { baseURL: server.url }));
  });
  after(async () => {
    await server.stop();
  });
}

// A client of user `id` connected over WebSocket, as apps connect (token from the server client).
export async function connectAs(server, admin, id) {
  const client = new StreamChat(server.apiKey, { baseURL: server.url, allowServerSideConnect: true });
  await client.connectUser({ id }, admin.createToken(id));
  return client;
}

// A random id with a readable prefix.
export const uid = (p) => `${p}-${Math.random().toString(36).slice(2, 10)}`;
