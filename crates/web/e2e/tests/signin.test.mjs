// Signing in on a phone, in Japanese: the demo nurse signs in with e-mail and password, sees
// her home page and her signed-in devices, and signs out. A care manager sets up the second
// factor from the security page, reading the key off the page as a person would type it into
// an authenticator app, and is asked for a fresh code at the next sign-in.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { expectNoSidewaysScrolling, launchBrowser, newPhonePage, screenshot, startServer, urlPath } from '../harness.mjs';
import { totp } from '../totp.mjs';
import { expectNoSeriousAxeViolations } from '../axe.mjs';

const PASSWORD = 'musubi-demo-2026'; // DEMO_PASSWORD in crates/domain/src/demo.rs
const NURSE = 'aoki@minatogawa.example';
const CARE_MANAGER = 'morita@minatogawa.example'; // not used by other tests: its 2FA sticks
const ADMIN = 'admin@minatogawa.example';

/** One GraphQL call to the server under test; throws on any error. */
async function graphql(serverUrl, query, variables, { token, association } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (association) headers['musubi-association'] = association;
  const res = await fetch(new URL('graphql', serverUrl), {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (body.errors) throw new Error(`GraphQL: ${JSON.stringify(body.errors)}`);
  return body.data;
}

/**
 * Makes the test repeatable on a database an earlier run already used: the association's
 * administrator removes the care manager's second factor, as they would for a lost phone.
 */
async function withoutSecondFactor(serverUrl, email) {
  const signIn = await graphql(
    serverUrl,
    'mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token next } }',
    { e: ADMIN, p: PASSWORD },
  );
  assert.equal(signIn.signIn.next, 'DONE', 'the demo administrator signs in with a password');
  const as = { token: signIn.signIn.token, association: 'minatogawa' };
  const { members } = await graphql(serverUrl, '{ members { userId email secondFactorEnabled } }', {}, as);
  const member = members.find((m) => m.email === email);
  assert.ok(member, `${email} is a member of minatogawa`);
  if (member.secondFactorEnabled) {
    await graphql(serverUrl, 'mutation($id: ID!) { resetMemberSecondFactor(userId: $id) }', { id: member.userId }, as);
  }
  await graphql(serverUrl, 'mutation { signOut }', {}, as);
}

describe('signing in on a phone', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer({ demo: true });
    browser = await launchBrowser();
  });

  after(async () => {
    try {
      await browser?.close();
    } finally {
      await server?.stop();
    }
  });

  /** A fresh phone (own cookies) for each test. */
  async function phone(t) {
    const opened = await newPhonePage(browser, { locale: 'ja-JP' });
    t.after(() => opened.context.close());
    return opened;
  }

  /** Fills in the sign-in form and presses 「ログイン」. */
  async function signIn(page, email) {
    await page.getByLabel('メールアドレス').fill(email);
    await page.getByLabel('パスワード', { exact: true }).fill(PASSWORD);
    await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      page.locator('form[action="/signin"]').getByRole('button', { name: 'ログイン', exact: true }).click(),
    ]);
  }

  /** 「ログアウト」 is in the header's menu: open it first. */
  async function signOutFromHeader(page) {
    const button = page.locator('form[action="/signout"]').getByRole('button', { name: 'ログアウト' });
    if (!(await button.isVisible())) await page.locator('.site-menu > summary').click();
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), button.click()]);
  }

  test('the demo nurse signs in, sees her home page and devices, and signs out', async (t) => {
    const { page, consoleErrors } = await phone(t);
    await page.goto(server.url, { waitUntil: 'load' });
    const headerSignIn = page.locator('.account-bar').getByRole('link', { name: 'ログイン', exact: true });
    assert.equal(await headerSignIn.count(), 1, 'the header offers 「ログイン」');
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), headerSignIn.click()]);
    assert.equal(urlPath(page), '/signin');
    assert.equal(await page.locator('h1').innerText(), 'ログイン');
    await screenshot(page, 'signin-ja.png');
    await expectNoSeriousAxeViolations(page, '/signin');
    await expectNoSidewaysScrolling(page, '/signin');

    // The show-password button comes from JavaScript and switches the field both ways.
    const password = page.getByLabel('パスワード', { exact: true });
    await password.fill('abc');
    await page.getByRole('button', { name: 'パスワードを表示' }).click();
    assert.equal(await password.getAttribute('type'), 'text');
    await page.getByRole('button', { name: 'パスワードを隠す' }).click();
    assert.equal(await password.getAttribute('type'), 'password');

    // A wrong password: a plain message, the address kept, the password not. The page comes
    // with status 401, which Chromium reports on the console: expected here, and only here.
    const errorsBefore = consoleErrors.length;
    await page.getByLabel('メールアドレス').fill(NURSE);
    await password.fill('wrong-password-1');
    await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      page.locator('form[action="/signin"]').getByRole('button', { name: 'ログイン', exact: true }).click(),
    ]);
    assert.match(await page.getByRole('alert').innerText(), /メールアドレスかパスワードがちがいます/);
    assert.equal(await page.getByLabel('メールアドレス').inputValue(), NURSE);
    assert.equal(await page.getByLabel('パスワード', { exact: true }).inputValue(), '');
    await screenshot(page, 'signin-error-ja.png');
    await expectNoSeriousAxeViolations(page, '/signin (wrong password)');
    const expected401 = consoleErrors.splice(errorsBefore);
    assert.ok(
      expected401.every((e) => e.includes('status of 401')),
      `only the 401 of the wrong password: ${JSON.stringify(expected401)}`,
    );

    await signIn(page, NURSE);
    assert.equal(urlPath(page), '/home');
    await screenshot(page, 'home-ja.png');
    await expectNoSeriousAxeViolations(page, '/home');
    const home = await page.locator('main').innerText();
    assert.ok(home.includes('青木 さくら'), 'the home page greets 青木 さくら');
    assert.ok(home.includes('みなと川医師会'), 'the home page lists みなと川医師会');
    assert.ok(
      (await page.locator('.account-bar').textContent()).includes('青木 さくら'),
      'the header shows her name',
    );
    await expectNoSidewaysScrolling(page, '/home');

    await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      page.getByRole('link', { name: /ログイン中の端末/ }).click(),
    ]);
    assert.equal(urlPath(page), '/me/sessions');
    await screenshot(page, 'sessions-ja.png');
    await expectNoSeriousAxeViolations(page, '/me/sessions');
    const sessions = await page.locator('main').innerText();
    assert.ok(sessions.includes('この端末'), 'this phone is marked 「この端末」');
    assert.ok(sessions.includes('すべての端末からログアウト'));
    assert.match(sessions, /Linux \/ Chrome|Android \/ Chrome|Chrome/, 'the device has a plain name');
    await expectNoSidewaysScrolling(page, '/me/sessions');

    await signOutFromHeader(page);
    assert.equal(urlPath(page), '/');
    assert.equal(
      await page.locator('.account-bar').getByRole('link', { name: 'ログイン', exact: true }).count(),
      1,
      'signed out: the header offers 「ログイン」 again',
    );
    // Signed out for real: the home page asks to sign in.
    await page.goto(`${server.url}home`, { waitUntil: 'load' });
    assert.equal(urlPath(page), '/signin');

    assert.deepEqual(consoleErrors, [], 'no console errors and no page errors');
  });

  test('a care manager sets up the second factor and needs a code at the next sign-in', async (t) => {
    await withoutSecondFactor(server.url, CARE_MANAGER);
    const { page, consoleErrors } = await phone(t);
    await page.goto(`${server.url}signin`, { waitUntil: 'load' });
    await signIn(page, CARE_MANAGER);
    assert.equal(urlPath(page), '/home');
    assert.ok((await page.locator('main').innerText()).includes('森田 由美'));

    await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      page.getByRole('link', { name: /2段階認証/ }).click(),
    ]);
    assert.equal(urlPath(page), '/me/security');
    await expectNoSeriousAxeViolations(page, '/me/security');
    await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      page.getByRole('link', { name: '2段階認証を設定する' }).click(),
    ]);
    assert.equal(urlPath(page), '/me/security/totp');
    assert.equal(await page.getByRole('img', { name: '認証アプリで読み取るQRコード' }).count(), 1);
    await screenshot(page, 'enrol-ja.png');
    await expectNoSeriousAxeViolations(page, '/me/security/totp');
    await expectNoSidewaysScrolling(page, '/me/security/totp');

    // No camera here: type the key by hand, as the page explains.
    await page.getByText('QRコードもボタンも使えないとき').click();
    const key = (await page.locator('#secret-key').innerText()).replace(/\s+/g, '');
    assert.match(key, /^[A-Z2-7]{32}$/, `a base32 key (got ${key})`);
    await screenshot(page, 'enrol-key-ja.png');

    await page.getByLabel('6けたの数字').fill(totp(key));
    await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      page.getByRole('button', { name: '設定を完了する' }).click(),
    ]);
    assert.equal(await page.locator('h1').innerText(), '予備のコードを書き写してください');
    assert.equal(await page.locator('.recovery-codes li').count(), 10, 'ten recovery codes');
    await screenshot(page, 'recovery-codes-ja.png');
    await expectNoSeriousAxeViolations(page, 'the recovery codes');
    await expectNoSidewaysScrolling(page, 'the recovery codes');

    await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      page.getByRole('link', { name: /書き写しました/ }).click(),
    ]);
    assert.equal(urlPath(page), '/home');
    await signOutFromHeader(page);
    assert.equal(urlPath(page), '/');

    await page.goto(`${server.url}signin`, { waitUntil: 'load' });
    await signIn(page, CARE_MANAGER);
    assert.equal(urlPath(page), '/signin/code', 'the password alone is not enough now');
    await screenshot(page, 'signin-code-ja.png');
    await expectNoSeriousAxeViolations(page, '/signin/code');
    // The way out for a lost phone is there, one tap away.
    await page.getByText('コードが使えない場合').click();
    assert.ok(await page.getByLabel('予備のコード').isVisible(), 'the recovery-code field opens');
    await screenshot(page, 'signin-code-recovery-ja.png');
    // The next step's code: never the one used while setting up, and accepted right away.
    await page.getByLabel('6けたの数字').fill(totp(key, { stepsAhead: 1 }));
    await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      page.getByRole('button', { name: '確認する', exact: true }).click(),
    ]);
    assert.equal(urlPath(page), '/home');
    assert.ok((await page.locator('main').innerText()).includes('森田 由美'));

    assert.deepEqual(consoleErrors, [], 'no console errors and no page errors');
  });
});
