// The patient register on a phone, in Japanese (docs/patients.md): a care manager registers a
// patient, brings in a visiting nurse of another association, and finds the patient again in the list.
//
// - 森田 由美 (care manager, みなと川医師会) opens 「患者」 from the menu and 「患者を登録」. Her
//   first try has a birth date outside its era (平成31年5月1日, which was 令和元年): the form
//   comes back (422) with the Japanese message next to 生年月日 and everything she typed still
//   there. She corrects it (S20.4.1), records the patient's consent to sharing and registers:
//   the entry says 「登録しました」 and shows the birth date by era with the age.
// - From the patient's group she invites 中村 愛, the visiting nurse of さくら台医師会, by the
//   kana of her name typed in katakana. 中村 is not in みなと川 at all: she is in 森田's
//   directory because the two associations share theirs (`invite_candidates`,
//   crates/db/src/groups/members.rs; the demo records the agreement). She works at another
//   facility, so the invitation needs the consent 森田 recorded. On her own phone 中村 finds the
//   invitation on her home page, joins, and sees the group in 「グループ」.
// - The list finds the patient by the hiragana of the reading and by half-width katakana.
// - The list, the refused form and the entry fit the phone and pass axe-core.
//
// 森田 signs in with her password only: run this before signin.test.mjs on a database (as the
// default, alphabetical order does), which gives her account a second factor.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { expectNoSeriousAxeViolations } from '../axe.mjs';
import {
  expectNoSidewaysScrolling,
  launchBrowser,
  newPhonePage,
  screenshot,
  startServer,
  urlPath,
} from '../harness.mjs';

const PASSWORD = 'musubi-demo-2026'; // DEMO_PASSWORD in crates/demo/src/lib.rs
const CARE_MANAGER = 'morita@minatogawa.example';
const CARE_MANAGER_NAME = '森田 由美';
// crates/demo/data/people.toml: さくら台訪問看護ステーション, in さくら台医師会 only.
const NURSE = 'nakamura@sakuradai.example';
const NURSE_NAME = '中村 愛';
const NURSE_KANA = 'なかむら あい';
const NURSE_KANA_TYPED = 'ナカムラ';

// Plain syllables for a given name no earlier run has used, with their half-width katakana.
const SYLLABLES = {
  あ: 'ｱ', い: 'ｲ', う: 'ｳ', え: 'ｴ', お: 'ｵ', か: 'ｶ', き: 'ｷ', く: 'ｸ', け: 'ｹ', こ: 'ｺ',
  さ: 'ｻ', し: 'ｼ', す: 'ｽ', せ: 'ｾ', そ: 'ｿ', た: 'ﾀ', ち: 'ﾁ', つ: 'ﾂ', て: 'ﾃ', と: 'ﾄ',
  な: 'ﾅ', に: 'ﾆ', ぬ: 'ﾇ', ね: 'ﾈ', の: 'ﾉ', は: 'ﾊ', ひ: 'ﾋ', ふ: 'ﾌ', へ: 'ﾍ', ほ: 'ﾎ',
  ま: 'ﾏ', み: 'ﾐ', む: 'ﾑ', め: 'ﾒ', も: 'ﾓ', や: 'ﾔ', ゆ: 'ﾕ', よ: 'ﾖ', ら: 'ﾗ', り: 'ﾘ',
  る: 'ﾙ', れ: 'ﾚ', ろ: 'ﾛ', わ: 'ﾜ',
};
const FAMILY = { name: '柳田', kana: 'やなぎだ', halfWidth: 'ﾔﾅｷﾞﾀﾞ' };

/** A patient nobody registered before: 柳田 + three random hiragana. */
function newPatient() {
  const pick = () => {
    const all = Object.keys(SYLLABLES);
    return all[Math.floor(Math.random() * all.length)];
  };
  const given = [pick(), pick(), pick()].join('');
  const halfGiven = [...given].map((c) => SYLLABLES[c]).join('');
  return {
    name: `${FAMILY.name} ${given}`,
    kana: `${FAMILY.kana} ${given}`,
    halfWidthKana: `${FAMILY.halfWidth} ${halfGiven}`,
  };
}

/** Today in Japan (the register counts ages by it). */
function todayInJapan() {
  const jst = new Date(Date.now() + 9 * 3600 * 1000);
  return { year: jst.getUTCFullYear(), month: jst.getUTCMonth() + 1, day: jst.getUTCDate() };
}

/** Whole years since a birth day, as of today in Japan. */
function ageOn(year, month, day) {
  const t = todayInJapan();
  let age = t.year - year;
  if (t.month < month || (t.month === month && t.day < day)) age -= 1;
  return age;
}

describe('the patient register on a phone', () => {
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

  /** A fresh phone (own cookies): one per person. */
  async function phone(t) {
    const opened = await newPhonePage(browser, { locale: 'ja-JP' });
    t.after(() => opened.context.close());
    return opened;
  }

  const at = (p) => new URL(p.replace(/^\//, ''), server.url).href;

  /** Runs `action` (which navigates) and returns the main response once the new page loaded. */
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
    assert.equal(urlPath(page), '/home', `${email} is signed in (with a password only)`);
  }

  /** Follows a link of the header's navigation, opening 「メニュー」 first if it is in there. */
  async function openFromMenu(page, name) {
    const inHeader = page.locator('.app-nav').getByRole('link', { name, exact: true });
    if (await inHeader.isVisible()) {
      await navigate(page, () => inHeader.click());
      return;
    }
    await page.locator('details.site-menu > summary').click();
    const inMenu = page.locator('.site-menu__nav').getByRole('link', { name, exact: true });
    await inMenu.waitFor({ state: 'visible' });
    await navigate(page, () => inMenu.click());
  }

  async function look(page, name, where) {
    await screenshot(page, name);
    await expectNoSidewaysScrolling(page, where);
    await expectNoSeriousAxeViolations(page, where);
  }

  test('a care manager registers a patient, invites a visiting nurse of another association found by kana, and finds the patient again', async (t) => {
    const manager = await phone(t);
    const nurse = await phone(t);
    const patient = newPatient();
    const groupName = `${patient.name}さん`;
    const age = ageOn(1945, 4, 1);
    const page = manager.page;

    // 「患者」 from the menu: the register of みなと川医師会, and 「患者を登録」.
    await signIn(page, CARE_MANAGER);
    await openFromMenu(page, '患者');
    assert.equal(urlPath(page), '/a/minatogawa/patients');
    assert.equal(await page.locator('h1').innerText(), '患者台帳');
    const cardsBefore = await page.locator('.patient-cards .patient-card').count();
    assert.ok(cardsBefore >= 2, `the demo's patients of her groups are listed (${cardsBefore})`);
    assert.equal(
      await page.locator('.patient-card', { hasText: patient.name }).count(),
      0,
      'the new patient is not there yet',
    );
    await navigate(page, () => page.getByRole('link', { name: '患者を登録', exact: true }).click());
    assert.equal(urlPath(page), '/a/minatogawa/patients/new');
    assert.equal(await page.locator('h1').innerText(), '患者を登録');

    // She fills in the form; the birth date is one that never was (平成 ended on 30 April 2019).
    const form = page.locator('form.patient-form');
    /** A field by its label (「生年月日 必須」, 「住所（任意）」: the name, then a mark). */
    const field = (label) => form.getByLabel(new RegExp(`^${label}(\\s|（|$)`));
    const typed = {
      氏名: patient.name,
      ふりがな: patient.kana,
      生年月日: '平成31年5月1日',
      郵便番号: '5550012',
      住所: 'みなと川区 青葉町2-3-4 青葉ハイツ101',
      町名: 'みなと川区 青葉町',
      電話: '06-1234-5678',
      主な病名: '慢性心不全\n2型糖尿病（インスリン自己注射）',
      キーパーソン: '長男 柳田 一郎さん',
      家族の連絡先: '長男 090-1111-2222（日中は会社）',
      ケアマネジャー: `みなと居宅介護支援事業所 ${CARE_MANAGER_NAME}`,
      訪問看護ステーション: '訪問看護ステーションみなと',
      薬局: 'みなと川薬局',
      備考: '玄関の鍵はキーボックス（番号は長男さんに確認）。',
    };
    for (const [label, value] of Object.entries(typed)) await field(label).fill(value);
    await form.getByRole('radio', { name: '女性', exact: true }).check();
    await field('要介護度').selectOption({ label: '要介護2' });

    const refused = await navigate(page, () => form.getByRole('button', { name: '登録する', exact: true }).click());
    assert.equal(refused.status(), 422, 'the form is refused');
    assert.equal(urlPath(page), '/a/minatogawa/patients/new', 'still the form');
    // The message, in Japanese, next to 生年月日 (and read with it), and nowhere else.
    const birthDate = field('生年月日');
    const birthField = form.locator('.patient-form__field--birth_date');
    const birthError = birthField.locator('.field__error');
    assert.match(await birthError.innerText(), /その元号にはない日付です/);
    assert.match(await birthError.innerText(), /令和元年5月1日/);
    const errorId = await birthError.getAttribute('id');
    assert.ok(
      (await birthDate.getAttribute('aria-describedby')).split(/\s+/).includes(errorId),
      'the message describes the birth-date field',
    );
    assert.equal(await birthDate.getAttribute('aria-invalid'), 'true');
    assert.equal(await form.locator('.field__error').count(), 1, 'only the birth date is at fault');
    // The summary above the form names it and links to it.
    const problems = page.locator('#form-problems');
    assert.equal(await problems.getAttribute('role'), 'alert');
    const toField = problems.getByRole('link', { name: '生年月日', exact: true });
    assert.equal(await toField.getAttribute('href'), `#${await birthDate.getAttribute('id')}`);
    // Everything she typed is still there.
    for (const [label, value] of Object.entries(typed)) {
      assert.equal(await field(label).inputValue(), value, `${label} is kept`);
    }
    assert.equal(await form.getByRole('radio', { name: '女性', exact: true }).isChecked(), true, '性別 is kept');
    assert.equal(
      await field('要介護度').evaluate((s) => s.options[s.selectedIndex].text),
      '要介護2',
      '要介護度 is kept',
    );
    await look(page, 'patients-form-refused-ja.png', 'the registration form with an error');

    // She corrects the date, records the consent to sharing, and registers.
    await birthDate.fill('S20.4.1');
    await field('同意日').fill('令和7年4月1日');
    await field('同意を得た人').fill(`みなと居宅介護支援事業所 ${CARE_MANAGER_NAME}`);
    await field('同意の範囲').fill('主治医・訪問看護・ケアマネジャー・薬局・病院で共有');
    await navigate(page, () => form.getByRole('button', { name: '登録する', exact: true }).click());

    // The entry: 「登録しました」, the birth date by era and the age.
    assert.match(urlPath(page), /^\/a\/minatogawa\/patients\/[0-9a-f-]{36}$/, 'the entry’s page');
    const entryPath = urlPath(page);
    assert.equal(new URL(page.url()).searchParams.get('done'), 'patient_registered');
    assert.match(await page.locator('.sns-flash').innerText(), /登録しました/);
    assert.equal(await page.locator('h1 .patient-entry__kana').innerText(), patient.kana);
    assert.ok((await page.locator('h1').innerText()).startsWith(patient.name), 'her name is the title');
    const fact = (term) =>
      page
        .locator('.patient-facts__row', { has: page.locator('dt', { hasText: new RegExp(`^${term}$`) }) })
        .locator('dd');
    assert.equal(await fact('生年月日').innerText(), `昭和20年4月1日（1945年4月1日）・${age}歳`);
    assert.deepEqual(
      (await page.locator('.patient-entry__head .kind').allInnerTexts()).map((s) => s.trim()),
      [`${age}歳`, '女性', '要介護2', '在宅'],
    );
    assert.equal(await fact('性別').innerText(), '女性');
    assert.equal(await fact('郵便番号').innerText(), '555-0012', 'the postal code as 123-4567');
    assert.equal(await fact('町名').innerText(), typed.町名);
    assert.equal(await fact('主な病名').innerText(), typed.主な病名, 'line breaks kept');
    assert.equal(await fact('同意日').innerText(), '令和7年4月1日（2025年4月1日）');
    assert.equal(await fact('同意を得た人').innerText(), `みなと居宅介護支援事業所 ${CARE_MANAGER_NAME}`);
    assert.equal(await fact('登録した人').innerText(), CARE_MANAGER_NAME);
    await look(page, 'patients-entry-ja.png', 'the new entry');

    // The patient's group: named after her, with the entry at its top; 森田 owns it.
    await navigate(page, () => page.getByRole('link', { name: '患者グループを開く' }).click());
    assert.match(urlPath(page), /^\/a\/minatogawa\/g\/[0-9a-f-]{36}$/);
    const groupPath = urlPath(page);
    assert.equal(await page.locator('h1').innerText(), groupName);
    const header = page.locator('.patient-header');
    assert.ok((await header.innerText()).includes(`${age}歳`), 'the entry at a glance');
    assert.equal(await header.getByRole('link', { name: '患者さんの情報を見る' }).getAttribute('href'), entryPath);

    // She looks for the さくら台 nurse by her kana, typed in katakana: found, with her
    // association named (さくら台 shares its directory with みなと川).
    const finder = page.getByLabel('招待する人を探す（氏名・ふりがな・事業所・職種）');
    await finder.fill(NURSE_KANA_TYPED);
    await navigate(page, () => page.getByRole('button', { name: '探す', exact: true }).click());
    const candidate = page.locator('#invite-candidates .member', { hasText: NURSE_NAME });
    assert.equal(await candidate.count(), 1, `${NURSE_NAME} is found`);
    const shown = await candidate.innerText();
    assert.ok(shown.includes(NURSE_KANA), 'shown with her kana');
    assert.ok(shown.includes('さくら台医師会'), 'and her association');
    assert.ok(shown.includes('さくら台訪問看護ステーション'), 'and her station');
    await screenshot(page, 'patients-group-directory-ja.png');
    await expectNoSidewaysScrolling(page, `${groupPath} with the directory search`);
    // Inviting her (another facility) is allowed because the consent is on record.
    await navigate(page, () =>
      page.getByRole('button', { name: `${NURSE_NAME} さんを招待する`, exact: true }).click(),
    );
    assert.equal(urlPath(page), groupPath);
    assert.match(await page.locator('.sns-flash').innerText(), /招待しました/);
    const invitedList = page.locator('section', { has: page.locator('h2#owner-title') });
    assert.ok((await invitedList.innerText()).includes(NURSE_NAME), 'she is listed as invited');
    await screenshot(page, 'patients-group-invited-ja.png');
    await expectNoSidewaysScrolling(page, groupPath);
    await expectNoSeriousAxeViolations(page, `${groupPath} with an invitation`);

    // On her own phone, the invitation waits on her home page; she joins.
    await signIn(nurse.page, NURSE);
    const invitation = nurse.page.locator('.invitation', { hasText: groupName });
    await invitation.waitFor();
    assert.equal(await invitation.locator('.kind--patient').innerText(), '患者', 'a patient group');
    assert.match(await invitation.innerText(), /みなと川医師会のグループです/);
    await screenshot(nurse.page, 'patients-nurse-home-invitation-ja.png');
    await expectNoSidewaysScrolling(nurse.page, '/home with the invitation');
    await navigate(nurse.page, () => invitation.getByRole('button', { name: '参加する', exact: true }).click());
    assert.equal(urlPath(nurse.page), groupPath, 'into the group');
    assert.match(await nurse.page.locator('.sns-flash').innerText(), /グループに参加しました/);
    assert.equal(await nurse.page.locator('h1').innerText(), groupName);
    assert.equal(await nurse.page.locator('.patient-header').count(), 1, 'she sees the entry at the top');
    // 「グループ」: the group is hers now (no longer an invitation).
    await openFromMenu(nurse.page, 'グループ');
    assert.equal(urlPath(nurse.page), '/groups');
    const link = nurse.page.locator('a.group-link', { hasText: groupName });
    assert.equal(await link.count(), 1, 'the group is listed');
    assert.equal(await link.getAttribute('href'), groupPath);
    assert.equal(await link.locator('.group-link__status').count(), 0, 'as a member, not invited');
    await screenshot(nurse.page, 'patients-nurse-groups-ja.png');
    await expectNoSidewaysScrolling(nurse.page, '/groups');

    // 森田 sees her among the members, marked as from another association.
    await page.goto(at(groupPath), { waitUntil: 'load' });
    const members = page.locator('section', { has: page.locator('h2#members-title') });
    assert.match(await members.locator('h2').innerText(), /メンバー（2 人）/);
    assert.ok((await members.innerText()).includes(NURSE_NAME), 'she is a member');

    // The list finds her by the hiragana of the reading…
    await openFromMenu(page, '患者');
    assert.equal(urlPath(page), '/a/minatogawa/patients');
    const search = async (text) => {
      const details = page.locator('details.patients-search');
      if (!(await details.evaluate((d) => d.open))) await details.locator('summary').click();
      await page.getByLabel('氏名・ふりがな', { exact: true }).fill(text);
      await navigate(page, () => page.getByRole('button', { name: 'この条件で表示する', exact: true }).click());
      assert.equal(new URL(page.url()).searchParams.get('q'), text, 'searched as typed');
      assert.equal(await page.getByLabel('氏名・ふりがな', { exact: true }).inputValue(), text, 'the words stay in the box');
      return page.locator('.patient-cards .patient-card');
    };
    const expectOnlyHer = async (cards, how) => {
      assert.equal(await cards.count(), 1, `${how}: one patient`);
      assert.equal(await cards.locator('.patient-card__name').innerText(), patient.name, `${how}: her`);
      assert.equal(await cards.locator('.patient-card__kana').innerText(), patient.kana);
      assert.ok((await cards.locator('.patient-card__facts').innerText()).includes(`${age}歳・女性`), `${how}: age and sex`);
      assert.equal(await cards.getAttribute('href'), entryPath);
      assert.ok(await cards.isVisible(), `${how}: shown as a card on the phone`);
    };
    const byHiragana = await search(patient.kana.replace(' ', ''));
    await expectOnlyHer(byHiragana, 'hiragana');
    // …and by half-width katakana.
    const byHalfWidth = await search(patient.halfWidthKana);
    await expectOnlyHer(byHalfWidth, 'half-width katakana');
    await look(page, 'patients-list-search-ja.png', 'the list searched by half-width katakana');
    // A search that finds nobody says so.
    const nobody = await search(`${FAMILY.halfWidth}ﾝﾝﾝﾝ`);
    assert.equal(await nobody.count(), 0);
    assert.match(await page.locator('#patients-title ~ .notice').innerText(), /条件にあう患者さんはいません/);
    // The whole list again, with her in it.
    await navigate(page, () => page.getByRole('link', { name: '条件をもとに戻す' }).click());
    assert.equal(await page.locator('.patient-cards .patient-card').count(), cardsBefore + 1, 'one more patient');
    await look(page, 'patients-list-ja.png', 'the list');

    // The refused form answered 422, which Chromium reports on the console; nothing else.
    const expected422 = manager.consoleErrors.filter((e) => e.includes('status of 422'));
    assert.equal(expected422.length, 1, `the refused form: ${JSON.stringify(manager.consoleErrors)}`);
    assert.deepEqual(
      manager.consoleErrors.filter((e) => !e.includes('status of 422')),
      [],
      'no other errors on the care manager’s phone',
    );
    assert.deepEqual(nurse.consoleErrors, [], 'no errors on the nurse’s phone');
  });
});
