// Accessibility checks for Musubi's browser tests: axe-core (Deque's rule engine) run inside
// the page as it is on the phone, failing on anything it rates `serious` or `critical`
// (colour contrast, names of buttons, links and form fields, ARIA misuse, …).
//
// The pages send a strict Content-Security-Policy (script-src 'self'), so axe is not added as
// a <script> tag: its source is evaluated through DevTools (`page.evaluate`), which CSP does
// not govern; this is also how @axe-core/playwright injects it.

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const axe = require('axe-core');

/** The impacts that fail a test. */
export const FAILING_IMPACTS = Object.freeze(['serious', 'critical']);

/**
 * Runs axe-core on the page as it is now and returns its violations rated serious or critical,
 * each as { id, impact, help, nodes: [{ target, summary }] }.
 *
 * @param {import('playwright-core').Page} page
 */
export async function seriousAxeViolations(page) {
  const loaded = await page.evaluate(() => typeof window.axe === 'object' && typeof window.axe.run === 'function');
  if (!loaded) await page.evaluate(axe.source);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => ({
        impact: n.impact,
        target: n.target.join(' '),
        summary: (n.failureSummary || '').replace(/\s+/g, ' ').trim(),
      })),
    }));
  });
  return violations
    .map((v) => ({ ...v, nodes: v.nodes.filter((n) => FAILING_IMPACTS.includes(n.impact || v.impact)) }))
    .filter((v) => v.nodes.length > 0);
}

/**
 * Fails if axe-core finds a serious or critical violation on the page, listing each rule, the
 * elements (CSS selectors) and why, with the page's address and `where` (a name for the step).
 *
 * @param {import('playwright-core').Page} page
 * @param {string} where
 */
export async function expectNoSeriousAxeViolations(page, where) {
  const found = await seriousAxeViolations(page);
  if (found.length === 0) return;
  const lines = [`axe-core: ${found.length} serious/critical rule(s) violated on ${where} (${page.url()}):`];
  for (const v of found) {
    lines.push(`- ${v.id} (${v.impact}): ${v.help}`);
    for (const n of v.nodes) lines.push(`    ${n.target}${n.summary ? ` — ${n.summary}` : ''}`);
  }
  throw new Error(lines.join('\n'));
}
