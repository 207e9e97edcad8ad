// Socket.IO load generator for the benchmarks: every client is the official
// socket.io-client 4, over WebSocket or HTTP long-polling (no upgrade).
//
//   node sio_loadgen.js '<json>'
//
// The JSON names a scenario and its parameters (see the scenarios at the
// end); common.js describes the talk with the harness. The server side is
// servers/sio_app.py (or node_sio_server.js): "echo" acknowledges with its
// data, "join" enters the room "bench", "broadcast" emits "b" to that room.
'use strict';

const { io } = require('socket.io-client');
const WebSocket = require('ws');
const { cfg, now, sleep, mark, Recorder, countError, connectAll, run } = require('./common');

const URL = `http://${cfg.host || '127.0.0.1'}:${cfg.port}`;

class Client {
  constructor(transport) {
    this.transport = transport;
  }
  connect(timeoutMs = 20000) {
    this.socket = io(URL, {
      transports: [this.transport],
      upgrade: false,
      forceNew: true,
      reconnection: false,
      timeout: timeoutMs,
      // no permessage-deflate, as in the Engine.IO scenarios: python-engineio
      // (simple-websocket) accepts it and compresses every frame it sends.
      // cfg.defaults keeps socket.io-client's own default (offered from 1 kB)
      perMessageDeflate: cfg.defaults ? { threshold: 1024 } : false,
    });
    return new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve(this));
      this.socket.once('connect_error', (err) => reject(err));
    }).then(() => {
      this.socket.on('disconnect', (reason) => {
        if (!this.closing) countError('disconnected: ' + reason);
      });
      return this;
    });
  }
  get open() { return this.socket.connected; }
  // Resolves once the engine's connection is closed (or after timeoutMs).
  close(timeoutMs = 3000) {
    this.closing = true;
    const engine = this.socket.io.engine;
    const closed = new Promise((resolve) => {
      if (!engine || engine.readyState === 'closed') resolve();
      else engine.once('close', resolve);
    });
    this.socket.disconnect();
    return Promise.race([closed, sleep(timeoutMs)]);
  }
}

// A room member that speaks the few Socket.IO packets it needs itself, over
// Engine.IO on a bare WebSocket (the `ws` package): CONNECT to "/", "join" with
// an acknowledgement, then it counts the events "b" it receives. Used for the
// 1,000 members of the room scenario: socket.io-client decoding 1,000 events
// takes the load generator's core longer than the fastest servers take to send
// them, which would hide the difference between servers.
class RoomMember {
  constructor(expected, onEvent) {
    this.expected = expected;      // the exact text of the event packet
    this.onEvent = onEvent;
    this.open = false;
  }
  connect(timeoutMs = 20000) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${URL.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`,
        { perMessageDeflate: false, handshakeTimeout: timeoutMs });
      this.ws = ws;
      const timer = setTimeout(() => { reject(new Error('join timeout')); ws.terminate(); }, timeoutMs);
      ws.on('message', (data) => {
        const text = data.toString();
        if (text === this.expected) this.onEvent(this);
        else if (text === '2') ws.send('3');                   // Engine.IO ping
        else if (text[0] === '0') ws.send('40');               // open: CONNECT to "/"
        else if (text.startsWith('40{')) ws.send('420["join"]'); // connected: join, ack id 0
        else if (text === '430[true]') {                        // joined
          this.open = true;
          clearTimeout(timer);
          resolve(this);
        } else if (text[0] === '4' && text[1] === '2') countError('unexpected event');
      });
      ws.on('error', (err) => {
        clearTimeout(timer);
        if (!this.open) reject(err);
        else countError('ws: ' + err.message.slice(0, 40));
      });
      ws.on('close', () => {
        clearTimeout(timer);
        if (this.open && !this.closing) countError('ws closed by server');
        this.open = false;
        if (this.onClosed) this.onClosed();
        reject(new Error('closed before joining'));
      });
    });
  }
  broadcast(payload) { this.ws.send('42' + JSON.stringify(['broadcast', payload])); }
  close(timeoutMs = 3000) {
    if (!this.open) return Promise.resolve();
    this.closing = true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.ws.terminate(); resolve(); }, timeoutMs);
      this.onClosed = () => { clearTimeout(timer); resolve(); };
      this.ws.send('41');                                      // DISCONNECT from "/"
      this.ws.close(1000);
    });
  }
}

// -- scenarios ---------------------------------------------------------------------------

// emit('echo', payload) with an acknowledgement, one in flight per client
async function ack() {
  const { transport, sessions: count, size = 100, warmup = 1, duration = 5 } = cfg;
  const payload = 'x'.repeat(size);
  const rec = new Recorder();
  let running = true;
  const send = (client) => {
    const t = now();
    client.socket.emit('echo', payload, (reply) => {
      if (reply === payload) rec.add(now() - t);
      else countError('wrong ack');
      if (running && client.open) send(client);
    });
  };
  const { sessions, failures } = await connectAll(count, () => new Client(transport), 50);
  for (const c of sessions) send(c);
  await sleep(warmup * 1000);
  await mark('start');
  rec.reset();
  await sleep(duration * 1000);
  const result = rec.summary();
  await mark('end');
  running = false;
  await Promise.all(sessions.map((c) => c.close()));
  return { ...result, sessions: sessions.length, connect_failures: failures };
}

// a new client connects (Engine.IO handshake, then Socket.IO's CONNECT to
// "/" and its answer) over long-polling, then disconnects; `concurrency` at a time
async function connects() {
  const { concurrency = 20, warmup = 1, duration = 5 } = cfg;
  const rec = new Recorder();
  let running = true;
  async function worker() {
    while (running) {
      const t = now();
      const client = new Client('polling');
      try {
        await client.connect();
        rec.add(now() - t);
      } catch (err) {
        countError('connect: ' + String(err.message).slice(0, 40));
        await sleep(10);
      }
      await client.close();
    }
  }
  const workers = Array.from({ length: concurrency }, worker);
  await sleep(warmup * 1000);
  await mark('start');
  rec.reset();
  await sleep(duration * 1000);
  const result = rec.summary();
  await mark('end');
  running = false;
  await Promise.all(workers);
  return { ...result, concurrency };
}

// `sessions` WebSocket clients (RoomMember) join the room; one of them asks
// the server to emit to the room, `broadcasts` times: the time until every
// member has it
async function room() {
  const { sessions: count, broadcasts = 3, size = 100, concurrency = 100 } = cfg;
  const payload = 'x'.repeat(size);
  const expected = '42' + JSON.stringify(['b', payload]);
  let received = 0;
  let target = 0;
  let done = null;
  const onEvent = (member) => {
    if (member.got) { countError('event received twice'); return; }
    member.got = true;
    received += 1;
    if (received === target && done) done();
  };
  const t0 = now();
  const { sessions, failures } = await connectAll(count, () => new RoomMember(expected, onEvent), concurrency);
  const connectSeconds = (now() - t0) / 1000;
  await mark('joined', { sessions: sessions.length, connect_failures: failures });
  const cpu0 = process.cpuUsage();
  const loop0 = now();
  const times = [];
  for (let i = 0; i < broadcasts; i++) {
    const members = sessions.filter((c) => c.open);
    if (!members.length) break;
    for (const c of members) c.got = false;
    received = 0;
    target = members.length;
    const finished = new Promise((resolve) => { done = resolve; });
    const t = now();
    members[0].broadcast(payload);
    const ok = await Promise.race([finished.then(() => true), sleep(30000).then(() => false)]);
    if (!ok) { countError(`broadcast incomplete: ${received}/${target}`); break; }
    times.push(now() - t);
    await sleep(100);
  }
  const cpu = process.cpuUsage(cpu0);
  const loopSeconds = (now() - loop0) / 1000;
  await mark('done', { broadcasts: times.length });
  const sorted = times.slice().sort((a, b) => a - b);
  await Promise.all(sessions.map((c) => c.close(5000)));
  return {
    sessions: sessions.length,
    connect_failures: failures,
    connect_seconds: connectSeconds,
    broadcasts: times.length,
    broadcast_ms: sorted.length ? sorted[Math.floor(sorted.length / 2)] : null,
    broadcast_all_ms: times,
    loadgen_cpu: (cpu.user + cpu.system) / 1e6 / loopSeconds,
    loadgen_cpu_ms_per_broadcast: times.length ? (cpu.user + cpu.system) / 1000 / times.length : null,
  };
}

// one client of each transport, so that lazy imports happen before measuring
async function warm() {
  for (const transport of ['websocket', 'polling']) {
    const client = await new Client(transport).connect();
    await client.socket.timeout(10000).emitWithAck('echo', 'warm');
    await client.close();
  }
  return {};
}

run({ ack, connects, room, warm });
