// Joining by invitation on a phone, in Japanese. The administrator of みなと川医師会 makes the
// second factor compulsory on the console's settings page and creates an in-person invitation;
// the invited nurse opens the link on her own phone, fills in her details and her own
// password, is sent to set up the authenticator app (reading the key off the page), sees her
// recovery codes and arrives on her home page. Signed out, she signs in again with her
// password and a fresh code.
//
// The association's setting is put back afterwards: the other browser tests sign in with a
// password alone.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { clickAndWait, expectNoSidewaysScrolling, launchBrowser, newPhonePage, screenshot, startServer, urlPath } from '../harness.mjs';
import { codeAtStep, timeStep, totp } from '../totp.mjs';
import { expectNoSeriousAxeViolations } from '../axe.mjs';

const PASSWORD = 'musubi-demo-2026'; // DEMO_PASSWORD in crates/domain/src/demo.rs
const ADMIN = 'admin@minatogawa.example';
const NEW_NAME = '新井 みどり';
const NEW_KANA = 'あらい みどり';
const NEW_PASSWORD = 'Minato-Kango-2026';

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

const SETTINGS = '{ associationSettings { requireSecondFactor sessionIdleMinutes sessionAbsoluteHours auditRetentionYears } }';

describe('joining by invitation on a phone', () => {
  let server;
  let browser;
  /** The administrator's API session, opened before the second factor becomes compulsory. */
  let admin;

  before(async () => {
    server = await startServer({ demo: true });
    browser = await launchBrowser();
    const { signIn } = await graphql(
      server.url,
      'mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token next } }',
      { e: ADMIN, p: PASSWORD },
    );
    assert.equal(signIn.next, 'DONE', 'the demo administrator signs in with a password');
    admin = { token: signIn.token, association: 'minatogawa' };
  });

  after(async () => {
    try {
      // Put the association back as the other tests expect it: a password is enough.
      if (admin) {
        const { associationSettings: s } = await graphql(server.url, SETTINGS, {}, admin);
        const input = { ...s, requireSecondFactor: false };
        await graphql(
          server.url,
          'mutation($i: AssociationSettingsInput!) { updateAssociationSettings(input: $i) { requireSecondFactor } }',
          { i: input },
          admin,
        );
      }
    } finally {
      try {
        await browser?.close();
      } finally {
        await server?.stop();
      }
    }
  });

  async function phone(t) {
    const opened = await newPhonePage(browser, { locale: 'ja-JP' });
    t.after(() => opened.context.close());
    return opened;
  }

  /** Errors from pages that answer with an error status on purpose (400 for a weak password). */
  function takeExpected(consoleErrors, from, status) {
    const taken = consoleErrors.splice(from);
    assert.ok(
      taken.every((e) => e.includes(`status of ${status}`)),
      `only the expected ${status}: ${JSON.stringify(taken)}`,
    );
  }

  async function signInWithPassword(page, email, password) {
    await page.getByLabel('メールアドレス').fill(email);
    await page.getByLabel('パスワード', { exact: true }).fill(password);
    await clickAndWait(
      page,
      page.locator('form[action="/signin"]').getByRole('button', { name: 'ログイン', exact: true }),
    );
  }

  test('an invited nurse accepts an invitation, sets a password and TOTP, signs in', async (t) => {
    // The administrator requires a second factor, on the console's settings page.
    const { page: office, consoleErrors: officeErrors } = await phone(t);
    await office.goto(`${server.url}signin`, { waitUntil: 'load' });
    await signInWithPassword(office, ADMIN, PASSWORD);
    assert.equal(urlPath(office), '/home');
    await office.goto(`${server.url}a/minatogawa/console/settings`, { waitUntil: 'load' });
    await expectNoSeriousAxeViolations(office, '/a/minatogawa/console/settings');
    const settingsForm = office.locator('form[action="/a/minatogawa/console/settings"]');
    await settingsForm.locator('input[name="require_second_factor"]').check();
    await clickAndWait(office, settingsForm.locator('button[type="submit"]'));
    const { associationSettings } = await graphql(server.url, SETTINGS, {}, admin);
    assert.equal(associationSettings.requireSecondFactor, true, 'the console saved the setting');
    assert.deepEqual(officeErrors, [], 'no console errors on the console pages');

    // An in-person invitation for the visiting-nurse station: the link to hand over.
    const { facilities } = await graphql(server.url, '{ facilities { id name } }', {}, admin);
    const station = facilities.find((f) => f.name === '訪問看護ステーションみなと');
    assert.ok(station, 'the demo facility exists');
    const { inviteMember } = await graphql(
      server.url,
      'mutation($f: ID) { inviteMember(role: MEMBER, facilityId: $f) { link } }',
      { f: station.id },
      admin,
    );
    const link = inviteMember.link;
    assert.match(link, /\/invite\/[A-Za-z0-9_-]{43}$/, `an invitation link (got ${link})`);

    // The nurse opens it on her own phone.
    const { page, consoleErrors } = await phone(t);
    const response = await page.goto(link, { waitUntil: 'load' });
    // Requests from this page never carry its path (the token) in a Referer.
    assert.equal(response.headers()['referrer-policy'], 'strict-origin');
    assert.equal(await page.locator('h1').innerText(), 'みなと川医師会からの招待');
    const summary = await page.locator('.invite-summary').innerText();
    assert.ok(summary.includes('訪問看護ステーションみなと'), 'the facility is shown');
    assert.ok(summary.includes('メンバー'), 'the role is shown');
    await screenshot(page, 'invite-ja.png');
    await expectNoSeriousAxeViolations(page, 'the invitation');
    await expectNoSidewaysScrolling(page, 'the invitation');

    const form = page.locator('form.invite-form');
    const email = `arai-${Date.now()}@minatogawa.example`;
    await form.getByLabel('メールアドレス').fill(email);
    await form.getByLabel('氏名').fill(NEW_NAME);
    await form.getByLabel('ふりがな').fill(NEW_KANA);
    // The doctor-kind choice shows only for physicians and dentists.
    const doctorKind = form.locator('fieldset.doctor-kind');
    await form.getByLabel('職種').selectOption({ label: '医師' });
    assert.ok(await doctorKind.isVisible(), 'shown for a physician');
    await form.getByLabel('職種').selectOption({ label: '看護師' });
    assert.ok(!(await doctorKind.isVisible()), 'hidden for a nurse');

    // A weak password first: each broken rule is said in plain Japanese next to the field.
    const password = form.getByLabel('パスワード（ご自分で決めてください）');
    await password.fill('abc');
    const errorsBefore = consoleErrors.length;
    await clickAndWait(page, form.getByRole('button', { name: '登録して参加する' }));
    takeExpected(consoleErrors, errorsBefore, 400);
    const problems = await page.locator('#password-problems').innerText();
    assert.match(problems, /短すぎます/);
    assert.match(problems, /文字の種類が足りません/);
    assert.equal(await form.getByLabel('氏名').inputValue(), NEW_NAME, 'what she typed stays');
    assert.equal(await password.inputValue(), '', 'but not the password');
    await screenshot(page, 'invite-weak-password-ja.png');

    await password.fill(NEW_PASSWORD);
    await clickAndWait(page, form.getByRole('button', { name: '登録して参加する' }));
    assert.equal(urlPath(page), '/signin/enrol', 'the association requires a second factor');
    await expectNoSeriousAxeViolations(page, '/signin/enrol');

    // Setting up the authenticator app, typing the key by hand.
    await page.getByText('QRコードもボタンも使えないとき').click();
    const key = (await page.locator('#secret-key').innerText()).replace(/\s+/g, '');
    assert.match(key, /^[A-Z2-7]{32}$/, `a base32 key (got ${key})`);
    const enrolStep = timeStep();
    await page.getByLabel('6けたの数字').fill(totp(key));
    await clickAndWait(page, page.getByRole('button', { name: '設定を完了する' }));
    assert.equal(await page.locator('h1').innerText(), '予備のコードを書き写してください');
    assert.equal(await page.locator('.recovery-codes li').count(), 10, 'ten recovery codes');
    await screenshot(page, 'invite-recovery-codes-ja.png');
    await expectNoSeriousAxeViolations(page, 'the recovery codes');

    await clickAndWait(page, page.getByRole('link', { name: /書き写しました/ }));
    assert.equal(urlPath(page), '/home');
    assert.ok((await page.locator('main').innerText()).includes(NEW_NAME), 'home greets her');
    assert.ok((await page.locator('.account-bar').textContent()).includes(NEW_NAME));
    assert.ok((await page.locator('main').innerText()).includes('訪問看護ステーションみなと'));
    await screenshot(page, 'invite-home-ja.png');
    await expectNoSeriousAxeViolations(page, '/home');

    await page.locator('.site-menu > summary').click();
    await clickAndWait(page, page.locator('.account-bar').getByRole('button', { name: 'ログアウト' }));
    assert.equal(urlPath(page), '/');

    // Signing in again: her password, then a fresh code (never the one used while setting up).
    await page.goto(`${server.url}signin`, { waitUntil: 'load' });
    await signInWithPassword(page, email, NEW_PASSWORD);
    assert.equal(urlPath(page), '/signin/code');
    await expectNoSeriousAxeViolations(page, '/signin/code');
    await page.getByLabel('6けたの数字').fill(codeAtStep(key, Math.max(enrolStep + 1, timeStep())));
    await clickAndWait(page, page.getByRole('button', { name: '確認する', exact: true }));
    assert.equal(urlPath(page), '/home');
    assert.ok((await page.locator('main').innerText()).includes(NEW_NAME));

    // The link was for one person, once.
    const { page: other, consoleErrors: otherErrors } = await phone(t);
    const again = await other.goto(link, { waitUntil: 'load' });
    assert.equal(again.status(), 410);
    assert.match(
      await other.locator('main').innerText(),
      /この招待リンクは使えません（期限切れ・使用済み・取り消し）/,
    );
    await screenshot(other, 'invite-used-ja.png');
    await expectNoSeriousAxeViolations(other, 'the used invitation');
    takeExpected(otherErrors, 0, 410);

    assert.deepEqual(consoleErrors, [], 'no console errors and no page errors');
  });
});
