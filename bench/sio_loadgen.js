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

// `sessions` WebSocket clients join the room; one of them asks the server to
// emit to the room, `broadcasts` times: the time until every client has it
async function room() {
  const { sessions: count, broadcasts = 3, size = 100, concurrency = 100 } = cfg;
  const payload = 'x'.repeat(size);
  let received = 0;
  let target = 0;
  let done = null;
  const make = () => {
    const client = new Client('websocket');
    const connect = client.connect.bind(client);
    client.connect = async () => {
      await connect();
      client.socket.on('b', (data) => {
        if (data !== payload) countError('wrong broadcast');
        else if (!client.got) {
          client.got = true;
          received += 1;
          if (received === target && done) done();
        }
      });
      await client.socket.timeout(20000).emitWithAck('join');
      return client;
    };
    return client;
  };
  const t0 = now();
  const { sessions, failures } = await connectAll(count, make, concurrency);
  const connectSeconds = (now() - t0) / 1000;
  await mark('joined', { sessions: sessions.length, connect_failures: failures });
  const times = [];
  for (let i = 0; i < broadcasts; i++) {
    const members = sessions.filter((c) => c.open);
    if (!members.length) break;
    for (const c of members) c.got = false;
    received = 0;
    target = members.length;
    const finished = new Promise((resolve) => { done = resolve; });
    const t = now();
    members[0].socket.emit('broadcast', payload);
    const ok = await Promise.race([finished.then(() => true), sleep(30000).then(() => false)]);
    if (!ok) { countError(`broadcast incomplete: ${received}/${target}`); break; }
    times.push(now() - t);
    await sleep(300);
  }
  await mark('done');
  const sorted = times.slice().sort((a, b) => a - b);
  await Promise.all(sessions.map((c) => c.close(5000)));
  return {
    sessions: sessions.length,
    connect_failures: failures,
    connect_seconds: connectSeconds,
    broadcast_ms: sorted.length ? sorted[Math.floor(sorted.length / 2)] : null,
    broadcast_all_ms: times,
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
