// Load an example's page (examples/*) in headless Chromium with the CDN copy of
// the client either blocked (as offline) or answered with the npm copy, and
// report what the page says as JSON on stdout.
//
//   node tests/interop/example_page.mjs CONFIG.json
//
// CONFIG: {"url", "chromium", "user_data_dir", "client_js" (path of the npm
//          copy), "cdn": "blocked" | "local", "wait_for" (text the state
//          line reaches), "timeout_ms"}. The Python test makes the assertions.

import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const timeout = config.timeout_ms || 15000;
const report = { state_text: null, page_errors: [], error: null };

let context;
try {
  context = await chromium.launchPersistentContext(config.user_data_dir, {
    executablePath: config.chromium,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout,
  });
  const page = context.pages()[0] || await context.newPage();
  page.on('pageerror', (e) => report.page_errors.push(String(e && e.stack || e)));
  await page.route('https://cdn.jsdelivr.net/**', (route) => (config.cdn === 'blocked'
    ? route.abort('internetdisconnected')
    : route.fulfill({ status: 200, contentType: 'application/javascript',
      headers: { 'Access-Control-Allow-Origin': '*' }, body: readFileSync(config.client_js) })));
  await page.goto(config.url, { waitUntil: 'load', timeout });
  await page.waitForFunction((want) => document.getElementById('state').textContent.includes(want),
    config.wait_for, { timeout }).catch(() => {});
  report.state_text = await page.evaluate(() => document.getElementById('state').textContent);
  report.state_class = await page.evaluate(() => document.getElementById('state').className);
} catch (err) {
  report.error = String(err && err.stack || err);
} finally {
  if (context) await context.close().catch(() => {});
}
process.stdout.write(JSON.stringify(report) + '\n');
process.exit(0);
