// Signing in with a passkey on a phone, in Japanese. The demo doctor signs in with his
// password once, registers a passkey for this phone on his security page, signs out, and then
// signs in by tapping 「パスキーでログイン」 alone — no e-mail, no password.
//
// Chromium's virtual authenticator (DevTools protocol, `WebAuthn` domain) plays the phone's
// passkey store, with user verification (fingerprint or face) always succeeding. WebAuthn
// needs a host name, not an IP address: the server is reached at http://localhost:<port>,
// which is also its public URL (the RP ID is `localhost`).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { clickAndWait, expectNoSidewaysScrolling, freePort, launchBrowser, newPhonePage, screenshot, startServer, urlPath } from '../harness.mjs';
import { expectNoSeriousAxeViolations } from '../axe.mjs';

const PASSWORD = 'musubi-demo-2026'; // DEMO_PASSWORD in crates/domain/src/demo.rs
const DOCTOR = 'kawamura@minatogawa.example';
const DOCTOR_NAME = '川村 健一';

describe('passkeys on a phone', () => {
  let server;
  let browser;
  let base;

  before(async () => {
    const port = await freePort();
    base = `http://localhost:${port}/`;
    server = await startServer({
      demo: true,
      listen: `127.0.0.1:${port}`,
      env: { MUSUBI_PUBLIC_URL: `http://localhost:${port}` },
    });
    browser = await launchBrowser();
  });

  after(async () => {
    try {
      await browser?.close();
    } finally {
      await server?.stop();
    }
  });

  test('a doctor signs in with a passkey', async (t) => {
    const { context, page, consoleErrors } = await newPhonePage(browser, { locale: 'ja-JP' });
    t.after(() => context.close());

    // The phone's passkey store: a platform authenticator that verifies its user.
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
      },
    });

    await page.goto(`${base}signin`, { waitUntil: 'load' });
    const passkeyButton = page.getByRole('button', { name: 'パスキーでログイン' });
    assert.ok(await passkeyButton.isVisible(), 'the script shows 「パスキーでログイン」');
    await screenshot(page, 'passkey-signin-ja.png');
    await expectNoSeriousAxeViolations(page, '/signin');
    await expectNoSidewaysScrolling(page, '/signin');

    // Once with the password, to register the passkey.
    await page.getByLabel('メールアドレス').fill(DOCTOR);
    await page.getByLabel('パスワード', { exact: true }).fill(PASSWORD);
    await clickAndWait(
      page,
      page.locator('form[action="/signin"]').getByRole('button', { name: 'ログイン', exact: true }),
    );
    assert.equal(urlPath(page), '/home', 'a password alone is enough in minatogawa');

    await clickAndWait(page, page.getByRole('link', { name: /パスキー/ }));
    assert.equal(urlPath(page), '/me/security');
    assert.match(await page.locator('main').innerText(), /パスキーは、まだ登録していません。/);
    const register = page.getByRole('button', { name: 'この端末にパスキーを登録' });
    assert.ok(await register.isVisible(), 'the script shows the register button');
    await screenshot(page, 'passkey-security-ja.png');
    await clickAndWait(page, register);
    assert.equal(urlPath(page), '/me/security');
    const security = await page.locator('main').innerText();
    assert.match(security, /パスキーを登録しました/);
    assert.equal(await page.locator('.passkey').count(), 1, 'one passkey in the list');
    await screenshot(page, 'passkey-registered-ja.png');
    await expectNoSeriousAxeViolations(page, '/me/security');
    await expectNoSidewaysScrolling(page, '/me/security');
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(credentials.length, 1, 'the phone keeps one passkey');
    assert.equal(credentials[0].isResidentCredential, true, 'a discoverable passkey');

    await page.locator('.site-menu > summary').click();
    await clickAndWait(page, page.locator('.account-bar').getByRole('button', { name: 'ログアウト' }));
    assert.equal(urlPath(page), '/');

    // Signed out: one tap, no e-mail, no password.
    await page.goto(`${base}signin`, { waitUntil: 'load' });
    await clickAndWait(page, page.getByRole('button', { name: 'パスキーでログイン' }));
    assert.equal(urlPath(page), '/home');
    assert.ok((await page.locator('main').innerText()).includes(DOCTOR_NAME), 'home greets him');
    assert.equal(await page.getByLabel('パスワード', { exact: true }).count(), 0);
    await screenshot(page, 'passkey-home-ja.png');
    await expectNoSeriousAxeViolations(page, '/home');

    // The list says when it was last used.
    await page.goto(`${base}me/security`, { waitUntil: 'load' });
    assert.doesNotMatch(await page.locator('.passkey').innerText(), /まだ使っていません/);

    assert.deepEqual(consoleErrors, [], 'no console errors and no page errors');
  });
});
