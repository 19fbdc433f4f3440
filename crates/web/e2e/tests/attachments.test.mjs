// Photos and files on comments and topics, on a phone, in Japanese.
//
// - The visiting nurse opens a topic of a patient group, takes a photo (the 「写真を撮る」 input:
//   `capture="environment"`) and adds a file of a type Musubi refuses. Each is sent at once
//   (static/app.js): the photo's progress bar finishes and its thumbnail appears; the refused
//   file shows the server's Japanese message as an alert and is taken out with 「取り消す」.
//   While a file travels the send button waits. She sends the reply with the photo.
// - The clinic doctor, a member who may see the topic, sees the thumbnail (it loads) and opens
//   its preview: a JPEG. The association's administrator, who is in no patient group, gets the
//   404 page for the file, its preview and its thumbnail.
// - The nurse posts a new topic for co-medical staff only with a photo and no text; the doctor,
//   outside that scope (though the group's owner), gets the 404 page for that photo.
// - At 200 % text on a 320 px phone the attach buttons are big and nothing scrolls sideways,
//   with a chosen file listed.
//
// The photo is drawn by the browser itself (a canvas saved as JPEG): no fixture is kept.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expectNoSeriousAxeViolations } from '../axe.mjs';
import {
  expectNoSidewaysScrolling,
  launchBrowser,
  newPhonePage,
  resultsDir,
  screenshot,
  startServer,
  urlPath,
} from '../harness.mjs';

const PASSWORD = 'musubi-demo-2026'; // DEMO_PASSWORD in crates/demo/src/lib.rs
// crates/test-support/src/demo.rs: NURSE, CLINIC_DOCTOR (owner of the 山田 group), ADMIN (in
// no patient group).
const NURSE = 'aoki@minatogawa.example';
const DOCTOR = 'kawamura@minatogawa.example';
const ADMIN = 'admin@minatogawa.example';
// crates/demo/data/groups.toml and conversation.toml: a topic everyone in the group sees.
const YAMADA = '山田 太郎さん（85歳・在宅酸素）';
const YAMADA_TOPIC = '訪問看護報告（退院後初回）';
/** Long enough for an upload and its previews to be made on a slow machine. */
const UPLOAD_TIMEOUT_MS = 30_000;

describe('attachments on a phone: a photo from the camera reaches who may see it, and only them', () => {
  let server;
  let browser;
  let dir;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'musubi-e2e-attachments-'));
    // The embedded file store keeps its objects under the data directory: a fresh one.
    server = await startServer({ demo: true, env: { MUSUBI_DATA_DIR: join(dir, 'data') } });
    browser = await launchBrowser();
  });

  after(async () => {
    try {
      await browser?.close();
    } finally {
      await server?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  });

  /** A fresh phone (own cookies): one per person. */
  async function phone(t) {
    const opened = await newPhonePage(browser, { locale: 'ja-JP' });
    t.after(() => opened.context.close());
    return opened;
  }

  const at = (p) => new URL(p.replace(/^\//, ''), server.url).href;

  async function navigate(page, action) {
    const [response] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), action()]);
    return response;
  }

  async function signIn(page, email) {
    await page.goto(at('/signin'), { waitUntil: 'load' });
    await page.getByLabel('メールアドレス').fill(email);
    await page.getByLabel('パスワード', { exact: true }).fill(PASSWORD);
    await navigate(page, () =>
      page.locator('form[action="/signin"]').getByRole('button', { name: 'ログイン', exact: true }).click(),
    );
    assert.equal(urlPath(page), '/home', `${email} is signed in`);
  }

  /** Opens a group from the groups page; returns its path. */
  async function openGroup(page, group) {
    await page.goto(at('/groups'), { waitUntil: 'load' });
    await navigate(page, () => page.locator('a.group-link', { hasText: group }).first().click());
    assert.match(urlPath(page), /^\/a\/minatogawa\/g\/[0-9a-f-]{36}$/);
    return urlPath(page);
  }

  /** Opens a topic from its group's page, as she would; returns its path. */
  async function openTopic(page, group, title) {
    await openGroup(page, group);
    await navigate(page, () => page.locator('a.topic-link', { hasText: title }).first().click());
    assert.match(urlPath(page), /^\/a\/minatogawa\/t\/[0-9a-f-]{36}$/);
    assert.equal(await page.locator('h1').innerText(), title);
    return urlPath(page);
  }

  async function look(page, name, where) {
    await screenshot(page, name);
    await expectNoSidewaysScrolling(page, where);
    await expectNoSeriousAxeViolations(page, where);
  }

  /** A photo as a phone's camera would give it: a JPEG the browser draws, written to a file. */
  async function photoFile(page, name, { width = 1600, height = 1200, label = '' } = {}) {
    const dataUrl = await page.evaluate(
      ({ width, height, label }) => {
        const canvas = document.createElement('canvas');
        canvas.width = width;
        canvas.height = height;
        const g = canvas.getContext('2d');
        const sky = g.createLinearGradient(0, 0, width, height);
        sky.addColorStop(0, '#f4c9a8');
        sky.addColorStop(1, '#7a4b3a');
        g.fillStyle = sky;
        g.fillRect(0, 0, width, height);
        g.fillStyle = '#ffffff';
        g.font = `${Math.round(height / 8)}px sans-serif`;
        g.fillText(label, width / 10, height / 2);
        return canvas.toDataURL('image/jpeg', 0.85);
      },
      { width, height, label },
    );
    assert.match(dataUrl, /^data:image\/jpeg;base64,/, 'the browser made a JPEG');
    const file = join(dir, name);
    await writeFile(file, Buffer.from(dataUrl.split(',')[1], 'base64'));
    return file;
  }

  /** The chosen file's line in the form's list, by its name. */
  const chosenItem = (form, name) => form.locator('.attach-item', { hasText: name });

  /** Waits until the file's upload is over (done or refused). */
  async function uploaded(form, name, state = 'done') {
    await chosenItem(form, name).and(form.locator(`.attach-item[data-state="${state}"]`)).waitFor({
      timeout: UPLOAD_TIMEOUT_MS,
    });
  }

  /** Whether every image matched has loaded with pixels (scrolled into view first: lazy). */
  async function imagesLoaded(locator) {
    const n = await locator.count();
    assert.ok(n > 0, 'there is an image');
    for (let i = 0; i < n; i++) {
      const img = locator.nth(i);
      await img.scrollIntoViewIfNeeded();
      await img.evaluate((el) =>
        el.complete && el.naturalWidth > 0
          ? null
          : new Promise((resolve, reject) => {
              el.addEventListener('load', resolve, { once: true });
              el.addEventListener('error', () => reject(new Error(`${el.src} did not load`)), { once: true });
            }),
      );
      assert.ok((await img.evaluate((el) => el.naturalWidth)) > 0, 'the image has pixels');
    }
  }

  /** Requests a URL as the person of `page` would by opening it: the answer. */
  async function open(page, href) {
    return page.goto(at(href), { waitUntil: 'load' });
  }

  async function expectNotFound(page, href, who) {
    const res = await open(page, href);
    assert.equal(res.status(), 404, `${who}: ${href} is not found`);
    assert.equal(await page.locator('h1').innerText(), 'ページが見つかりません', `${who}: the 404 page`);
  }

  test('a photo taken on a reply reaches the doctor in the group; someone outside gets 404', async (t) => {
    const nurse = await phone(t);
    const doctor = await phone(t);
    const admin = await phone(t);
    const stamp = Date.now().toString(36);
    const text = `褥瘡の写真です（e2e ${stamp}）`;
    const photoName = `sacrum-${stamp}.jpg`;
    const refusedName = `page-${stamp}.html`;

    await signIn(nurse.page, NURSE);
    const topicPath = await openTopic(nurse.page, YAMADA, YAMADA_TOPIC);
    const form = nurse.page.locator('form#reply');
    // The script shows the controls (without it they would do nothing).
    const camera = form.locator('label', { hasText: '写真を撮る' });
    await camera.waitFor();
    assert.equal(await form.getByLabel('写真を撮る').getAttribute('capture'), 'environment');
    assert.equal(await form.getByLabel('写真を撮る').getAttribute('accept'), 'image/*');
    assert.equal(await form.getByLabel('ファイルを添付').getAttribute('multiple'), '');
    for (const label of [camera, form.locator('label', { hasText: 'ファイルを添付' })]) {
      const box = await label.boundingBox();
      assert.ok(box.height >= 44 && box.width >= 44, `a big target: ${box.width}×${box.height}`);
    }

    // A photo from the camera, sent slowly enough to see it travel: the send button waits.
    const photo = await photoFile(nurse.page, photoName, { label: stamp });
    const cdp = await nurse.context.newCDPSession(nurse.page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 200,
      downloadThroughput: -1,
      uploadThroughput: 64 * 1024,
    });
    await form.getByLabel('写真を撮る').setInputFiles(photo);
    const item = chosenItem(form, photoName);
    await item.waitFor();
    assert.equal(await item.locator('progress').count(), 1, 'a progress bar for the photo');
    const sendButton = form.getByRole('button', { name: '送信', exact: true });
    assert.equal(await sendButton.isDisabled(), true, 'the send button waits while the photo travels');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: -1,
    });
    await uploaded(form, photoName);
    assert.equal(await item.locator('progress').isVisible(), false, 'the progress bar is done');
    assert.match(await item.innerText(), /添付しました/);
    await imagesLoaded(item.locator('img.attach-item__thumb'));
    assert.equal(await sendButton.isDisabled(), false, 'the send button is back');
    const ids = await form.locator('input[name=attachments]').inputValue();
    assert.match(ids, /^[0-9a-f-]{36}$/, 'the photo is to be attached');

    // A file Musubi does not take: the server's message, in Japanese, next to it.
    const refused = join(dir, refusedName);
    await writeFile(refused, '<!doctype html><script>alert(1)</script>');
    await form.getByLabel('ファイルを添付').setInputFiles(refused);
    await uploaded(form, refusedName, 'failed');
    const alert = chosenItem(form, refusedName).getByRole('alert');
    const message = await alert.innerText();
    assert.match(message, /[ぁ-んァ-ン一-龯]/, `a Japanese message: ${message}`);
    assert.equal(await form.locator('input[name=attachments]').inputValue(), ids, 'not attached');
    await look(nurse.page, 'attachments-reply-chosen-ja.png', `${topicPath} with files chosen`);
    await form.screenshot({ path: join(resultsDir, 'attachments-reply-box-ja.png') });
    await chosenItem(form, refusedName).getByRole('button', { name: `${refusedName}を取り消す` }).click();
    assert.equal(await chosenItem(form, refusedName).count(), 0, 'taken out');

    // Sent: the comment shows the photo as a thumbnail, and nothing else is left to send.
    await form.getByLabel('返信', { exact: true }).fill(text);
    await navigate(nurse.page, () => sendButton.click());
    assert.equal(urlPath(nurse.page), topicPath);
    const mine = nurse.page.locator('li.comment', { hasText: text });
    const thumb = mine.locator('img.attachment__thumb');
    await imagesLoaded(thumb);
    assert.equal(await thumb.getAttribute('alt'), photoName);
    const fileId = ids;
    const href = `/a/minatogawa/files/${fileId}`;
    assert.equal(await mine.locator('a.attachment__photo').getAttribute('href'), `${href}/preview`);
    assert.equal(await nurse.page.locator('form#reply input[name=attachments]').inputValue(), '');
    assert.equal(await nurse.page.locator('form#reply .attach-item').count(), 0);

    // The doctor, a member who sees the topic: the thumbnail loads, the preview is a JPEG.
    await signIn(doctor.page, DOCTOR);
    await openTopic(doctor.page, YAMADA, YAMADA_TOPIC);
    const seen = doctor.page.locator('li.comment', { hasText: text });
    await imagesLoaded(seen.locator('img.attachment__thumb'));
    await look(doctor.page, 'attachments-topic-doctor-ja.png', `${topicPath} (the doctor)`);
    await seen.screenshot({ path: join(resultsDir, 'attachments-comment-ja.png') });
    const preview = await navigate(doctor.page, () => seen.locator('a.attachment__photo').click());
    assert.equal(preview.status(), 200, 'the preview opens');
    assert.equal(preview.headers()['content-type'], 'image/jpeg');
    assert.equal(urlPath(doctor.page), `${href}/preview`);

    // The administrator is in no patient group: the file is not there for him.
    await signIn(admin.page, ADMIN);
    for (const path of [href, `${href}/preview`, `${href}/thumb`, `${href}?download=1`]) {
      await expectNotFound(admin.page, path, 'the administrator');
    }
  });

  test('a new topic for co-medical staff with only a photo: the doctor outside its scope gets 404', async (t) => {
    const nurse = await phone(t);
    const doctor = await phone(t);
    const stamp = Date.now().toString(36);
    const title = `創部の写真（e2e ${stamp}）`;
    const photoName = `wound-${stamp}.jpg`;

    await signIn(nurse.page, NURSE);
    const groupPath = await openGroup(nurse.page, YAMADA);
    await nurse.page.goto(at(`${groupPath}/new`), { waitUntil: 'load' });
    const form = nurse.page.locator(`form[action="${groupPath}/new"]`);
    await form.getByLabel('題名').fill(title);
    await form.locator('input[name=scope][value=some]').check();
    await form.locator('input[name=co_medical]').check();
    const photo = await photoFile(nurse.page, photoName, { width: 900, height: 1600, label: stamp });
    await form.getByLabel('写真を撮る').setInputFiles(photo);
    await uploaded(form, photoName);
    await look(nurse.page, 'attachments-new-topic-ja.png', `${groupPath}/new with a photo`);
    const fileId = await form.locator('input[name=attachments]').inputValue();
    assert.match(fileId, /^[0-9a-f-]{36}$/);
    await navigate(nurse.page, () => form.getByRole('button', { name: '投稿する' }).click());
    assert.match(urlPath(nurse.page), /^\/a\/minatogawa\/t\/[0-9a-f-]{36}$/, 'posted without any text');
    assert.equal(await nurse.page.locator('h1').innerText(), title);
    const first = nurse.page.locator('li.comment').first();
    await imagesLoaded(first.locator('img.attachment__thumb'));
    // The body was left empty: no placeholder text is shown.
    assert.equal(await first.locator('.comment__body').count(), 0);

    // The clinic doctor owns the group but is not co-medical: the photo is not there for him.
    await signIn(doctor.page, DOCTOR);
    const href = `/a/minatogawa/files/${fileId}`;
    for (const path of [href, `${href}/preview`, `${href}/thumb`]) {
      await expectNotFound(doctor.page, path, 'the doctor outside the scope');
    }
  });

  test('at 200 % text on a 320 px phone the attach buttons stay big and nothing scrolls sideways', async (t) => {
    const width = 320;
    const context = await browser.newContext({
      viewport: { width, height: 640 },
      screen: { width, height: 640 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
      locale: 'ja-JP',
      extraHTTPHeaders: { 'Accept-Language': 'ja,en;q=0.5' },
    });
    t.after(() => context.close());
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    // The browser's own text size (as large-text.test.mjs sets it), not a zoom.
    await cdp.send('Page.setFontSizes', { fontSizes: { standard: 32, fixed: 26 } });
    await signIn(page, NURSE);
    const topicPath = await openTopic(page, YAMADA, YAMADA_TOPIC);
    assert.equal(await page.evaluate(() => getComputedStyle(document.documentElement).fontSize), '36px');
    const form = page.locator('form#reply');
    const longName = `とても長い名前の写真ファイル-${Date.now().toString(36)}-褥瘡の経過.jpg`;
    await form.getByLabel('ファイルを添付').setInputFiles(await photoFile(page, longName, { width: 400, height: 300 }));
    await uploaded(form, longName);

    const problems = await page.evaluate((width) => {
      const found = [];
      const root = document.documentElement;
      if (root.scrollWidth > width) found.push(`scrollWidth ${root.scrollWidth} > ${width}`);
      const targets = [...document.querySelectorAll('form#reply .attach__button, form#reply .attach-item__cancel')];
      for (const el of targets) {
        const r = el.getBoundingClientRect();
        if (r.width + 0.5 < 44 || r.height + 0.5 < 44) found.push(`small ${el.className}: ${r.width}×${r.height}`);
        if (r.right > width + 0.5) found.push(`${el.className} goes past the edge (${r.right})`);
      }
      if (targets.length < 3) found.push(`only ${targets.length} controls`);
      return found;
    }, width);
    // The screen only: full-page screenshots reset the text size (see large-text.test.mjs).
    await mkdir(resultsDir, { recursive: true });
    await form.scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(resultsDir, 'attachments-reply-200-percent-ja.png') });
    assert.deepEqual(problems, [], `${topicPath} at 200 % text`);
  });
});
