// What both load generators (loadgen.js: Engine.IO, sio_loadgen.js:
// Socket.IO) share: the configuration, the JSON-lines talk with the harness,
// latency statistics, error counts and the connection pool.
//
// The configuration is the JSON in argv[2]. Events go to stdout as JSON
// lines. At a {"event":"mark"} line the generator waits for one line on stdin
// before it goes on (the harness samples the server's CPU and memory there);
// the load keeps running meanwhile. The last line is {"event":"result", ...}.
// Diagnostics go to stderr.
'use strict';

const readline = require('readline');
const { performance } = require('perf_hooks');

const cfg = JSON.parse(process.argv[2] || '{}');

const now = () => performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const log = (...args) => process.stderr.write(args.join(' ') + '\n');

// -- stdin handshake with the harness ----------------------------------------

const stdinLines = [];
const stdinWaiters = [];
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (stdinWaiters.length) stdinWaiters.shift()(line);
  else stdinLines.push(line);
});

function mark(name, extra) {
  emit({ event: 'mark', name, ...extra });
  if (!cfg.interactive) return Promise.resolve('');
  if (stdinLines.length) return Promise.resolve(stdinLines.shift());
  return new Promise((resolve) => stdinWaiters.push(resolve));
}

// -- statistics ----------------------------------------------------------------

class Recorder {
  constructor() { this.reset(); }
  reset() {
    this.count = 0;
    this.samples = [];
    this.t0 = now();
    this.cpu0 = process.cpuUsage();
  }
  add(latencyMs) {
    this.count += 1;
    this.samples.push(latencyMs);
  }
  summary() {
    const elapsed = (now() - this.t0) / 1000;
    const cpu = process.cpuUsage(this.cpu0);
    const sorted = Float64Array.from(this.samples).sort();
    const q = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : null);
    return {
      count: this.count,
      seconds: elapsed,
      rate: this.count / elapsed,
      p50_ms: q(0.5),
      p99_ms: q(0.99),
      loadgen_cpu: (cpu.user + cpu.system) / 1e6 / elapsed,
    };
  }
}

const errors = { count: 0, kinds: {} };
function countError(kind) {
  errors.count += 1;
  errors.kinds[kind] = (errors.kinds[kind] || 0) + 1;
}

// -- helpers ---------------------------------------------------------------------------

// Connects `count` sessions made by `make()` (each with an async connect()),
// `concurrency` at a time.
async function connectAll(count, make, concurrency) {
  const sessions = new Array(count);
  let next = 0;
  let failures = 0;
  async function worker() {
    while (next < count) {
      const i = next++;
      const session = make();
      try {
        await session.connect();
        sessions[i] = session;
      } catch (err) {
        failures += 1;
        countError('connect: ' + String(err.message).slice(0, 40));
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { sessions: sessions.filter(Boolean), failures };
}

// Runs the scenario cfg.scenario of `scenarios`, prints its result, exits.
// `cleanup` runs before the exit. Never runs away: cfg.deadline seconds at most.
function run(scenarios, cleanup = () => {}) {
  setTimeout(() => {
    log('loadgen: hard deadline reached');
    emit({ event: 'result', error: 'hard deadline reached' });
    process.exit(3);
  }, 1000 * (cfg.deadline || 300)).unref();
  (async () => {
    const scenario = scenarios[cfg.scenario];
    if (!scenario) throw new Error(`unknown scenario ${cfg.scenario}`);
    const result = await scenario();
    emit({ event: 'result', scenario: cfg.scenario, errors: errors.count, error_kinds: errors.kinds, ...result });
    cleanup();
    process.exit(0);
  })().catch((err) => {
    log('loadgen failed:', err && err.stack);
    emit({ event: 'result', error: String(err && err.message), errors: errors.count, error_kinds: errors.kinds });
    process.exit(2);
  });
}

module.exports = { cfg, now, sleep, emit, log, mark, Recorder, countError, connectAll, run };
