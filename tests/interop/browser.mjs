// Load the demo page in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser is downloaded), let it connect and upgrade, send
// messages through its form, and report the page's state as JSON on stdout.
//
//   node tests/interop/browser.mjs CONFIG.json
//
// CONFIG: {"url", "chromium", "user_data_dir", "screenshot", "messages": [...],
//          "timeout_ms"}. The Python test makes the assertions.

import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const timeout = config.timeout_ms || 15000;
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const report = {
  steps: [], console: [], page_errors: [], failed_requests: [], scripts: [], error: null,
};
const step = (what) => report.steps.push(what);

async function pageState(page) {
  return page.evaluate(() => {
    const text = (id) => document.getElementById(id).textContent.trim();
    const b = document.body.dataset;
    return {
      state: b.state,
      transport: b.transport,
      upgraded: b.upgraded,
      latency: b.latency === undefined ? null : Number(b.latency),
      echoes: Number(b.echoes || 0),
      state_text: text('state'),
      transport_text: text('transport'),
      upgrade_text: text('upgrade'),
      latency_text: text('latency'),
      sid_text: text('sid'),
      client_text: text('client'),
      socket_id: window.demo && window.demo.socket ? window.demo.socket.id : null,
      messages: [...document.querySelectorAll('#messages .msg')].map((li) => ({
        direction: li.classList.contains('out') ? 'out' : 'in',
        text: li.querySelector('.bubble').textContent,
        meta: li.querySelector('.meta').textContent,
      })),
      events: [...document.querySelectorAll('#events li span')].map((s) => s.textContent),
      spark_bars: document.querySelectorAll('#spark rect').length,
    };
  });
}

let context;
try {
  context = await chromium.launchPersistentContext(config.user_data_dir, {
    executablePath: config.chromium,
    headless: true,
    args: FLAGS,
    viewport: { width: 1200, height: 880 },
    deviceScaleFactor: 1,
    colorScheme: 'light',
    timeout,
  });
  step('browser started');
  const page = context.pages()[0] || await context.newPage();
  page.on('console', (m) => report.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => report.page_errors.push(String(e && e.stack || e)));
  page.on('requestfailed', (r) => {
    // the page's own Disconnect aborts a pending long-poll: not a failure
    report.failed_requests.push(`${r.method()} ${r.url()}: ${r.failure() && r.failure().errorText}`);
  });
  page.on('request', (r) => { if (r.resourceType() === 'script') report.scripts.push(r.url()); });

  await page.goto(config.url, { waitUntil: 'load', timeout });
  step('page loaded');
  await page.waitForSelector('body[data-state="open"]', { timeout });
  step('open');
  report.opened = await pageState(page);
  await page.waitForSelector('body[data-upgraded="true"][data-transport="websocket"]', { timeout });
  step('upgraded');
  await page.waitForSelector('body[data-latency]', { timeout });
  step('latency shown');

  for (const message of config.messages) {
    await page.fill('#text', message);
    await page.press('#text', 'Enter');
  }
  const want = config.messages.length;
  await page.waitForFunction((n) => Number(document.body.dataset.echoes || 0) >= n, want, { timeout });
  // every sent bubble has its round trip
  await page.waitForFunction(() => [...document.querySelectorAll('#messages .msg.out .meta')]
    .every((m) => m.textContent.includes('echoed')), null, { timeout });
  // a second latency sample, taken on the WebSocket
  await page.waitForFunction(() => document.querySelectorAll('#spark rect').length >= 2, null,
    { timeout });
  step('echoed');
  await page.click('#text');   // focus ring on the input, as a user would see it
  report.connected = await pageState(page);
  if (config.screenshot) {
    await page.screenshot({ path: config.screenshot });
    step('screenshot');
  }

  // The page's Disconnect button closes the session; Connect opens a new one.
  const oldSid = report.connected.socket_id;
  await page.click('#toggle');
  await page.waitForSelector('body[data-state="closed"]', { timeout });
  report.disconnected = await pageState(page);
  step('disconnected');
  await page.click('#toggle');
  await page.waitForFunction((sid) => document.body.dataset.state === 'open'
    && window.demo.socket.id && window.demo.socket.id !== sid, oldSid, { timeout });
  report.reconnected = await pageState(page);
  step('reconnected');
} catch (err) {
  report.error = String(err && err.stack || err);
} finally {
  if (context) await context.close().catch(() => {});
}
process.stdout.write(JSON.stringify(report) + '\n');
process.exit(0);
