// Real-time benchmark (prints figures, asserts nothing): send→receive latency and deliveries per
// second for a livestream channel with 1, 100 and 1000 watching sockets on chat-local, next to a
// bare WebSocket broadcast (the `ws` package, same machine, same run) as the baseline.
//
//   CHAT_LOCAL_BIN=<release chat-local> node tests/js/bench/realtime.mjs
import { WebSocket, WebSocketServer } from 'ws';
import { StreamChat } from 'stream-chat';
import { startServer } from '../harness.js';

const MESSAGES = 50;
const AUDIENCES = [1, 100, 1000];

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

function report(name, latencies, deliveries, seconds) {
  latencies.sort((a, b) => a - b);
  const fmt = (v) => `${v.toFixed(2)} ms`;
  console.log(
    `${name.padEnd(34)} p50 ${fmt(percentile(latencies, 50)).padStart(10)}  p99 ${fmt(percentile(latencies, 99)).padStart(10)}  ${Math.round(deliveries / seconds)
      .toString()
      .padStart(8)} deliveries/s`,
  );
}

async function baseline(n) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((r) => wss.once('listening', r));
  const url = `ws://127.0.0.1:${wss.address().port}`;
  const latencies = [];
  let received = 0;
  const clients = await Promise.all(
    Array.from({ length: n }, () => new Promise((resolve) => {
      const ws = new WebSocket(url);
      ws.on('message', (data) => {
        latencies.push(performance.now() - JSON.parse(data).sent);
        received++;
      });
      ws.once('open', () => resolve(ws));
    })),
  );
  const start = performance.now();
  for (let i = 0; i < MESSAGES; i++) {
    const frame = JSON.stringify({ type: 'message.new', sent: performance.now(), message: { text: `m${i}` } });
    for (const c of wss.clients) c.send(frame);
    await new Promise((r) => setTimeout(r, 10));
  }
  while (received < MESSAGES * n) await new Promise((r) => setTimeout(r, 5));
  const seconds = (performance.now() - start) / 1000;
  clients.forEach((c) => c.close());
  wss.close();
  report(`bare ws broadcast, ${n} sockets`, latencies, received, seconds);
}

async function chatLocal(server, admin, n) {
  const cid = `bench-${n}-${Date.now()}`;
  const channel = admin.channel('livestream', cid, { created_by_id: 'bench-sender' });
  await channel.create();
  const wsBase = server.url.replace('http', 'ws');
  const latencies = [];
  let received = 0;
  const sockets = [];
  for (let i = 0; i < n; i++) {
    const id = `bench-viewer-${i}`;
    const query = new URLSearchParams({
      json: JSON.stringify({ user_id: id, user_details: { id }, client_request_id: `${i}` }),
      api_key: server.apiKey,
      authorization: admin.createToken(id),
      'stream-auth-type': 'jwt',
    });
    const ws = new WebSocket(`${wsBase}/connect?${query}`);
    const connectionId = await new Promise((resolve, reject) => {
      ws.once('message', (data) => resolve(JSON.parse(data).connection_id));
      ws.once('error', reject);
    });
    ws.on('message', (data) => {
      const event = JSON.parse(data);
      if (event.type === 'message.new' && event.message.sent) {
        latencies.push(performance.now() - event.message.sent);
        received++;
      }
    });
    await fetch(`${server.url}/channels/livestream/${cid}/query?api_key=${server.apiKey}&connection_id=${connectionId}`, {
      method: 'POST',
      headers: { Authorization: admin.createToken(id), 'stream-auth-type': 'jwt', 'Content-Type': 'application/json' },
      body: JSON.stringify({ state: false, watch: true }),
    });
    sockets.push(ws);
  }
  const start = performance.now();
  for (let i = 0; i < MESSAGES; i++) {
    await channel.sendMessage({ text: `m${i}`, user_id: 'bench-sender', sent: performance.now() });
    await new Promise((r) => setTimeout(r, 10));
  }
  const deadline = Date.now() + 60_000;
  while (received < MESSAGES * n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const seconds = (performance.now() - start) / 1000;
  sockets.forEach((s) => s.close());
  report(`chat-local, ${n} watchers`, latencies, received, seconds);
  if (received < MESSAGES * n) console.log(`  (only ${received} of ${MESSAGES * n} deliveries arrived)`);
}

// Message throttling off (seed: it "can be disabled"): the benchmark measures the fan-out, not
// the 5 messages/s a client is held to.
const server = await startServer({ env: { CHAT_MESSAGE_THROTTLE: 'off' } });
const admin = new StreamChat(server.apiKey, server.apiSecret, { baseURL: server.url });
await admin.upsertUser({ id: 'bench-sender' });
console.log(`${MESSAGES} messages, 10 ms apart; latency from send to each socket's receipt`);
for (const n of AUDIENCES) {
  await baseline(n);
  await chatLocal(server, admin, n);
}
await server.stop();
