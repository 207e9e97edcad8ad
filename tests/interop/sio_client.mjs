// socket.io-client 4 in Node: run tests/interop/sio_scenarios.js against a server
// and print the report as one JSON line.
//
//   node tests/interop/sio_client.mjs CONFIG.json
//
// With {"restart": true} in CONFIG it instead connects once, prints
// {"event": "connected", "sid"} and waits (reconnection on) until it is connected
// again after the test restarted the server, acks one echo on the new connection
// and prints {"event": "reconnected", "sid", "echo", "attempts", "reasons"}.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { NodeWebSocket, NodeXHR } from 'engine.io-client';
import { io } from 'socket.io-client';

const require = createRequire(import.meta.url);
require('./sio_scenarios.js');

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const print = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

async function restart() {
  const reasons = [];
  let attempts = 0;
  const socket = io(config.url, {
    transports: config.transports || undefined,
    auth: { token: 'secret', user: config.user },
    reconnectionDelay: 100, reconnectionDelayMax: 500, timeout: 5000,
  });
  socket.io.on('reconnect_attempt', (n) => { attempts = n; });
  socket.on('disconnect', (reason) => reasons.push(reason));
  let connects = 0;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no reconnection in time')), config.timeout_ms);
    socket.on('connect', async () => {
      connects += 1;
      if (connects === 1) {
        print({ event: 'connected', sid: socket.id });
        return;
      }
      clearTimeout(timer);
      const echo = await new Promise((r) => socket.emit('echo', 'after restart', (...a) => r(a)));
      print({ event: 'reconnected', sid: socket.id, echo, attempts, reasons });
      resolve();
    });
  });
  socket.close();
}

// the default mode's first WebSocket opens only when the scenario lets it
let releaseUpgrade;
const gate = new Promise((resolve) => { releaseUpgrade = resolve; });
class GatedWebSocket extends NodeWebSocket {
  doOpen() {
    gate.then(() => { if (this.readyState === 'opening') super.doOpen(); });
  }
}

try {
  if (config.restart) {
    await restart();
  } else {
    const hooks = { defaultTransports: [NodeXHR, GatedWebSocket], releaseUpgrade };
    print(await globalThis.runSioScenarios(io, config, hooks));
  }
  process.exit(0);
} catch (err) {
  print({ error: String(err && err.stack || err) });
  process.exit(1);
}
