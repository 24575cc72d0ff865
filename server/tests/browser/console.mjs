// Drives the web console of a running strata node in a real headless
// Chromium (Debian's `chromium`, through `playwright-core` from npm), the way
// a person would: types a PromQL query, runs it, checks the table and the
// graph show the written data, opens the cardinality, storage, ingest and
// tenants pages, and saves screenshots.
//
//   node server/tests/browser/console.mjs <base url> <artifacts dir>
//
// Environment:
//   CONSOLE_METRIC        the metric the node holds (default console_temp)
//   CONSOLE_EXPECT        comma-separated values the instant query must show
//   CONSOLE_SERIES        how many series the metric has (default 2)
//   STRATA_TOKEN          a tenant token to type in the token field (optional)
//   STRATA_ADMIN_TOKEN    the admin token, for the ingest and tenants pages (optional)
//   CONSOLE_ROLLED        a tenant whose buckets were rolled: the storage page must list its
//                         finished roll task and its cold tables (optional)
//   STRATA_OTHER_TOKEN    another tenant's token, which must see none of the data
//                         (default: an invalid token)
//   CHROMIUM_BIN          the browser (default /usr/bin/chromium)
//   PLAYWRIGHT_CORE_DIR   where playwright-core is (default
//                         ~/.cache/strata-tools/node/node_modules/playwright-core,
//                         as scripts/install-test-deps.sh installs it)
//
// Exits 0 when every check passed; otherwise prints what failed and exits 1
// (2 when a prerequisite is missing).

import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [base, artifacts] = process.argv.slice(2);
if (!base || !artifacts) {
  console.error('usage: node console.mjs <base url> <artifacts dir>');
  process.exit(2);
}
const metric = process.env.CONSOLE_METRIC || 'console_temp';
const expect = (process.env.CONSOLE_EXPECT || '').split(',').filter(Boolean);
const seriesCount = Number(process.env.CONSOLE_SERIES || 2);
const token = process.env.STRATA_TOKEN || '';
const adminToken = process.env.STRATA_ADMIN_TOKEN || '';
const otherToken = process.env.STRATA_OTHER_TOKEN || '';

function loadPlaywright() {
  const require = createRequire(import.meta.url);
  const tools = process.env.STRATA_TOOLS_DIR || path.join(os.homedir(), '.cache', 'strata-tools');
  const candidates = [process.env.PLAYWRIGHT_CORE_DIR, path.join(tools, 'node', 'node_modules', 'playwright-core'), 'playwright-core'].filter(Boolean);
  for (const c of candidates) {
    try {
      return require(c);
    } catch (_) {
      // next candidate
    }
  }
  console.error('console.mjs: playwright-core not found (looked in ' + candidates.join(', ') + '); run scripts/install-test-deps.sh');
  process.exit(2);
}

const chromiumBin = process.env.CHROMIUM_BIN || ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
if (!chromiumBin || !fs.existsSync(chromiumBin)) {
  console.error('console.mjs: no chromium found (CHROMIUM_BIN, /usr/bin/chromium); run scripts/install-test-deps.sh');
  process.exit(2);
}
const { chromium } = loadPlaywright();
fs.mkdirSync(artifacts, { recursive: true });

const started = Date.now();
const step = (what) => console.log(`[console.mjs ${((Date.now() - started) / 1000).toFixed(1)}s] ${what}`);
const problems = [];

const browser = await chromium.launch({ executablePath: chromiumBin, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  // Script errors and CSP violations fail the test.
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push('console error: ' + m.text());
  });

  step('open ' + base + '/');
  const resp = await page.goto(base + '/');
  const csp = resp.headers()['content-security-policy'] || '';
  if (!csp.includes("default-src 'self'") || csp.includes('unsafe-inline')) throw new Error('weak or missing Content-Security-Policy: ' + csp);
  await page.waitForSelector('#expr');

  if (token) {
    step('type the token');
    await page.fill('#token', token);
    await page.press('#token', 'Enter');
    await page.waitForSelector('#expr');
  }

  step('an invalid query shows a Prometheus-style error');
  await page.click('#expr');
  await page.keyboard.type('sum(' + metric);
  await page.keyboard.press('Escape');
  await page.click('#run');
  const err = await (await page.waitForSelector('#query-error')).textContent();
  if (!/bad_data/.test(err)) throw new Error('expected a bad_data error, got: ' + err);

  step('type the query with completion');
  await page.fill('#expr', '');
  await page.click('#expr');
  const prefix = metric.slice(0, Math.max(3, metric.length - 4));
  await page.keyboard.type(prefix, { delay: 30 });
  const item = await page.waitForSelector(`#completion li[data-value="${metric}"]`);
  if (!item) throw new Error('no completion for ' + metric);
  // Choose it with the keyboard: the first match is selected; move to ours.
  const values = await page.$$eval('#completion li', (lis) => lis.map((li) => li.dataset.value));
  for (let i = 0; i < values.indexOf(metric); i++) await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Tab');
  const typed = await page.inputValue('#expr');
  if (typed !== metric) throw new Error(`completion gave ${JSON.stringify(typed)}, expected ${metric}`);
  // Label completion inside braces.
  await page.keyboard.type('{ro', { delay: 30 });
  await page.waitForSelector('#completion li[data-value="room"]');
  await page.keyboard.press('Escape');
  // ... and in a grouping clause, with the value completion after `room="`.
  await page.fill('#expr', '');
  await page.keyboard.type('sum by (ro', { delay: 30 });
  await page.waitForSelector('#completion li[data-value="room"]');
  await page.keyboard.press('Escape');
  await page.fill('#expr', '');
  await page.keyboard.type(metric + '{room="ki', { delay: 30 });
  await page.waitForSelector('#completion li[data-value="kitchen"]');
  await page.keyboard.press('Tab');
  const withValue = await page.inputValue('#expr');
  if (withValue !== metric + '{room="kitchen"') throw new Error('value completion gave ' + JSON.stringify(withValue));
  await page.fill('#expr', metric);

  step('run the instant query');
  await page.click('#run');
  await page.waitForSelector('#result-table tbody tr');
  const tableText = await page.textContent('#result-table');
  for (const v of expect) {
    if (!tableText.includes(v)) throw new Error(`the table lacks ${v}: ${tableText}`);
  }
  const rows = await page.$$eval('#result-table tbody tr', (trs) => trs.length);
  if (rows !== seriesCount) throw new Error(`the table has ${rows} rows, expected ${seriesCount}`);

  step('run the range query (graph, last 5m)');
  await page.click('#tab-graph');
  await page.selectOption('#range', '5m');
  await page.waitForFunction((n) => document.querySelectorAll('#graph path.series').length === n, seriesCount);
  const ds = await page.$$eval('#graph path.series', (ps) => ps.map((p) => p.getAttribute('d')));
  for (const d of ds) {
    if (!/^M[\d.]+ [\d.]+/.test(d || '')) throw new Error('a graph path has no data: ' + d);
  }
  const legend = await page.textContent('.legend');
  if (!legend.includes(metric)) throw new Error('the legend lacks ' + metric + ': ' + legend);
  await page.screenshot({ path: path.join(artifacts, 'explorer.png'), fullPage: true });
  step('saved explorer.png');

  step('the cardinality page');
  await page.goto(base + '/#/cardinality');
  await page.waitForSelector('#by-metric tbody tr');
  const byMetric = await page.textContent('#by-metric');
  if (!byMetric.includes(metric)) throw new Error('the cardinality page lacks ' + metric + ': ' + byMetric);
  const active = await page.textContent('#active-series');
  if (!/max_active_series/.test(active)) throw new Error('no active series figure: ' + active);
  await page.screenshot({ path: path.join(artifacts, 'cardinality.png'), fullPage: true });
  step('saved cardinality.png');

  step('the storage page');
  await page.goto(base + '/#/storage');
  await page.waitForSelector('#storage-strata_hot tbody tr');
  const storage = await page.textContent('#storage-strata_hot');
  if (!storage.includes('strata_hot_series')) throw new Error('the storage page lacks strata_hot_series: ' + storage);
  step('the storage page: work in progress and the cold tier');
  await page.waitForSelector('#tasks-recent tbody tr');
  await page.waitForSelector('#cold-tables tbody tr');
  const tasks = await page.textContent('#tasks');
  if (!/Work in progress/.test(tasks) || !/nothing running|roll|replay|merge/.test(tasks)) throw new Error('no tasks panel: ' + tasks);
  if (process.env.CONSOLE_ROLLED) {
    const recent = await page.textContent('#tasks-recent');
    if (!/roll/.test(recent) || !/tenant /.test(recent) || !/finished/.test(recent)) throw new Error('the finished roll is not listed: ' + recent);
    const cold = await page.textContent('#cold-tables');
    for (const want of ['samples', 'rollup 5m', 'rollup 1h', 'series', process.env.CONSOLE_ROLLED]) {
      if (!cold.includes(want)) throw new Error('the cold panel lacks ' + want + ': ' + cold);
    }
  }
  await page.screenshot({ path: path.join(artifacts, 'storage.png'), fullPage: true });
  step('saved storage.png');

  if (adminToken) {
    step('the ingest page with the admin token');
    await page.goto(base + '/#/ingest');
    await page.fill('#token', adminToken);
    await page.press('#token', 'Enter');
    await page.waitForSelector('#ingest table');
    const ingest = await page.textContent('#ingest');
    if (!/partitions/.test(ingest)) throw new Error('the ingest page shows no partitions: ' + ingest);
    await page.screenshot({ path: path.join(artifacts, 'ingest.png'), fullPage: true });

    step('the tenants page with the admin token');
    await page.goto(base + '/#/tenants');
    await page.waitForSelector('#tenants table, #tenants .muted');
    await page.screenshot({ path: path.join(artifacts, 'tenants.png'), fullPage: true });

    const tenants = await page.textContent('#tenants');
    if (token && !/acme/.test(tenants)) throw new Error('the tenants page lacks acme: ' + tenants);
  }

  step("another token (another tenant's, or none valid) sees none of the data");
  await page.goto(base + '/#/explorer');
  await page.waitForSelector('#expr');
  await page.fill('#token', otherToken || 'not-a-token');
  await page.press('#token', 'Enter');
  await page.waitForFunction(() => document.querySelector('#expr') && document.querySelector('#expr').value === '');
  await page.fill('#expr', metric);
  await page.click('#run');
  await page.waitForSelector('#query-error, #result-table');
  // The table and the error only: the result header's timing ("13 ms") may
  // contain an expected value's digits.
  const shown = await page.$eval('#result', (r) =>
    ['#result-table', '#query-error'].map((s) => (r.querySelector(s) || { textContent: '' }).textContent).join(' '));
  for (const v of expect) {
    if (shown.includes(v)) throw new Error('another token sees the data: ' + shown);
  }
  await page.goto(base + '/#/cardinality');
  await page.waitForSelector('#by-metric, #cardinality .error');
  const otherCard = await page.textContent('#cardinality');
  if (otherCard.includes(metric)) throw new Error("another token sees the tenant's metric: " + otherCard);

  // The invalid query's 400 and the wrong token's 401s are logged by the browser; those are expected.
  const unexpected = problems.filter((p) => !/status of 40[01] /.test(p));
  if (unexpected.length) throw new Error('the page logged errors:\n  ' + unexpected.join('\n  '));
  step('all checks passed');
} catch (e) {
  failed = true;
  console.error('console.mjs: FAILED: ' + (e && e.stack ? e.stack : e));
  if (problems.length) console.error('page problems:\n  ' + problems.join('\n  '));
  try {
    const pages = browser.contexts().flatMap((c) => c.pages());
    if (pages[0]) await pages[0].screenshot({ path: path.join(artifacts, 'failure.png'), fullPage: true });
  } catch (_) {
    // best effort
  }
} finally {
  await browser.close();
}
console.log('console.mjs: artifacts in ' + artifacts);
process.exit(failed ? 1 : 0);
