// Swagger UI in a real browser: headless Chromium (Debian's, at /usr/bin/chromium) driven by
// playwright-core against a running plystrad.
//
// `cargo xtask browser` installs the dependencies, starts plystrad on a temporary SQLite database
// and a free loopback port, and runs this file with:
//   PLYSTRA_URL       the server's base URL (http://127.0.0.1:PORT)
//   PLYSTRA_API_KEY   its bootstrap key (holding every permission)
//   ARTIFACT_DIR      where the screenshots go
//   CHROMIUM          the browser executable (default /usr/bin/chromium)
//
// It seeds the Finance Reviewer fixture through the HTTP API, then, through the UI only:
// authorizes with the API key in the Authorize dialog, runs "Try it out" on
// GET /api/v1/capabilities and finds the five system capabilities in the rendered 200 response,
// runs POST /api/v1/authz/check and /api/v1/authz/explain with the document's example body and
// finds the decision, and saves screenshots. Any failed expectation exits non-zero.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = required('PLYSTRA_URL').replace(/\/$/, '');
const key = required('PLYSTRA_API_KEY');
const artifacts = required('ARTIFACT_DIR');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const CAPABILITIES = [
  'audit.explainable',
  'identity.business',
  'resource.registry',
  'authorization.resource',
  'admin.control_plane',
];
const TIMEOUT = 30_000;
let passed = 0;

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
}

async function api(method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: { 'X-Plystra-API-Key': key, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`${method} ${path}: ${response.status} ${text}`);
  }
  return JSON.parse(text);
}

async function waitForReady() {
  const deadline = Date.now() + 60_000;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${base}/api/v1/ready`);
      if (response.ok) {
        return;
      }
      last = `${response.status} ${await response.text()}`;
    } catch (error) {
      last = String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`plystrad did not become ready: ${last}`);
}

// The Finance Reviewer fixture, as far as the document's example check needs it: alice acts for
// the finance reviewer of space_acme, whose finance_approver role covers invoice approve in the
// finance group tree; invoice_001 sits in finance.apac. The example decides allow.
async function seed() {
  await api('POST', '/api/v1/users', {
    id: 'user_alice',
    email: 'alice@example.com',
    password: 'correct horse battery',
  });
  await api('POST', '/api/v1/spaces', { id: 'space_acme', name: 'Acme' });
  for (const [id, path] of [
    ['group_finance', 'finance'],
    ['group_finance_apac', 'finance.apac'],
  ]) {
    await api('POST', '/api/v1/spaces/space_acme/groups', { id, path });
  }
  for (const [id, display_name] of [
    ['member_finance_reviewer', 'Finance reviewer'],
    ['member_invoice_creator', 'Invoice creator'],
  ]) {
    await api('POST', '/api/v1/spaces/space_acme/members', { id, display_name });
  }
  await api('POST', '/api/v1/spaces/space_acme/user-members', {
    id: 'um_alice_finance_reviewer',
    user_id: 'user_alice',
    member_id: 'member_finance_reviewer',
    relation_type: 'delegate',
  });
  await api('POST', '/api/v1/resource-types', { key: 'invoice', display_name: 'Invoice' });
  await api('POST', '/api/v1/resource-types/invoice/actions', { key: 'approve', risk_level: 'high' });
  await api('POST', '/api/v1/resource-types/invoice/mapping', { storage_kind: 'internal_table' });
  await api('POST', '/api/v1/spaces/space_acme/resources', {
    id: 'invoice_001',
    resource_type: 'invoice',
    group_id: 'group_finance_apac',
    owner_member_id: 'member_invoice_creator',
  });
  await api('POST', '/api/v1/spaces/space_acme/roles', {
    id: 'role_finance_approver',
    key: 'finance_approver',
    name: 'Finance approver',
  });
  const permission = await api('POST', '/api/v1/permissions', {
    resource: 'invoice',
    action: 'approve',
    scope: 'group_tree',
  });
  await api('POST', '/api/v1/role-permissions', {
    role_id: 'role_finance_approver',
    permission_id: permission.data.id,
  });
  await api('POST', '/api/v1/spaces/space_acme/member-roles', {
    member_id: 'member_finance_reviewer',
    role_id: 'role_finance_approver',
    scope_anchor_group_id: 'group_finance',
  });
}

// The operation block of `method path`.
function operation(page, method, path) {
  return page
    .locator(`.opblock.opblock-${method.toLowerCase()}`)
    .filter({ has: page.locator(`[data-path="${path}"]`) })
    .first();
}

// Expands the operation, presses "Try it out" and "Execute", and returns the rendered live
// response's status cell and body once the server has answered.
async function tryItOut(page, method, path) {
  const block = operation(page, method, path);
  await block.locator('.opblock-summary').first().click();
  await block.getByRole('button', { name: 'Try it out' }).click();
  await block.getByRole('button', { name: 'Execute' }).click();
  const live = block.locator('.live-responses-table');
  const status = live.locator('tbody .response-col_status').first();
  await status.waitFor({ timeout: TIMEOUT });
  const body = live.locator('.response-col_description pre').first();
  await body.waitFor({ timeout: TIMEOUT });
  return { live, status: (await status.innerText()).trim(), body: await body.innerText() };
}

// A viewport-sized screenshot with the live response at the top.
async function shoot(page, live, path) {
  await live.evaluate((element) => element.scrollIntoView({ block: 'start' }));
  await page.screenshot({ path });
}

function pass(message) {
  passed += 1;
  console.log(`ok ${passed} - ${message}`);
}

function expect(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

async function main() {
  mkdirSync(artifacts, { recursive: true });
  await waitForReady();
  await seed();

  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  let page;
  try {
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.setDefaultTimeout(TIMEOUT);
    const errors = [];
    page.on('pageerror', (error) => errors.push(String(error)));

    // 1. The UI renders the document.
    await page.goto(`${base}/docs`);
    await page.locator('.swagger-ui .info .title', { hasText: 'Plystra Core API' }).waitFor();
    pass('/docs renders the Plystra Core API document');

    // 2. Authorize with the API key through the dialog.
    await page.locator('.scheme-container button.authorize').click();
    const dialog = page.locator('.modal-ux');
    await dialog.waitFor();
    const apiKeyForm = dialog.locator('.auth-container').filter({ hasText: 'ApiKeyAuth' });
    await apiKeyForm.locator('input').first().fill(key);
    await apiKeyForm.locator('button.authorize').click();
    // Once applied, the form shows the key as set and offers Logout instead of Authorize.
    await apiKeyForm.locator('button', { hasText: 'Logout' }).waitFor();
    await apiKeyForm.locator('button.btn-done').click();
    await dialog.waitFor({ state: 'detached' });
    pass('authorized with the API key in the Authorize dialog');

    // 3. GET /api/v1/capabilities: 200 and the five capabilities on the page.
    const capabilities = await tryItOut(page, 'GET', '/api/v1/capabilities');
    expect(capabilities.status === '200', `capabilities answered ${capabilities.status}: ${capabilities.body}`);
    const listed = JSON.parse(capabilities.body).data.map((c) => c.id);
    for (const id of CAPABILITIES) {
      expect(capabilities.body.includes(`"${id}"`), `${id} is not in the rendered response: ${capabilities.body}`);
      expect(listed.includes(id), `${id} is not in the response's data: ${listed}`);
    }
    const capabilitiesShot = join(artifacts, 'swagger-ui-capabilities.png');
    await shoot(page, capabilities.live, capabilitiesShot);
    pass(`GET /api/v1/capabilities shows 200 with ${CAPABILITIES.join(', ')}`);

    // 4. POST /api/v1/authz/check with the document's example body: a decision.
    const check = await tryItOut(page, 'POST', '/api/v1/authz/check');
    expect(check.status === '200', `check answered ${check.status}: ${check.body}`);
    const decided = JSON.parse(check.body).data;
    expect(decided.decision === 'allow', `the example check did not allow: ${check.body}`);
    expect(decided.audit_log_id, `the decision has no audit record: ${check.body}`);
    const checkShot = join(artifacts, 'swagger-ui-authz-check.png');
    await shoot(page, check.live, checkShot);
    pass(`POST /api/v1/authz/check with its example decides ${decided.decision}`);

    // 5. POST /api/v1/authz/explain with the same example: the decision and its trace.
    const explain = await tryItOut(page, 'POST', '/api/v1/authz/explain');
    expect(explain.status === '200', `explain answered ${explain.status}: ${explain.body}`);
    const trace = JSON.parse(explain.body).data;
    expect(trace.decision === 'allow', `the example explain did not allow: ${explain.body}`);
    expect(trace.matched_candidates.length > 0, `the trace has no candidate: ${explain.body}`);
    pass(`POST /api/v1/authz/explain with its example explains ${trace.decision}`);

    const pageShot = join(artifacts, 'swagger-ui.png');
    await page.screenshot({ path: pageShot, fullPage: true });
    expect(errors.length === 0, `the page threw: ${errors.join('; ')}`);
    console.log(`screenshots: ${capabilitiesShot} ${checkShot} ${pageShot}`);
  } catch (error) {
    if (page) {
      const failure = join(artifacts, 'swagger-ui-failure.png');
      await page.screenshot({ path: failure, fullPage: true }).catch(() => {});
      console.error(`screenshot of the failure: ${failure}`);
    }
    throw error;
  } finally {
    await browser.close();
  }
}

main().then(
  () => console.log(`browser: ${passed} passed, 0 failed`),
  (error) => {
    console.error(`not ok - ${error.stack || error}`);
    console.log(`browser: ${passed} passed, 1 failed`);
    process.exit(1);
  },
);
