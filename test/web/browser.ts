// Debian's chromium driven by playwright-core, and the accessibility checks the page tests share.
//
// JPKI_TEST_BROWSER=1 (CI) makes a missing chromium a failure; without it the browser tests are skipped
// on a machine that has no /usr/bin/chromium.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { expect } from 'vitest';

export const CHROMIUM = process.env.JPKI_CHROMIUM ?? '/usr/bin/chromium';
export const browserRequired = process.env.JPKI_TEST_BROWSER === '1';
export const browserAvailable = existsSync(CHROMIUM);

export const SCREENSHOT_DIR = join(process.cwd(), 'test-results', 'screenshots');

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Chromium with a fresh profile, Japanese locale and Japan time. */
export async function launchBrowser(): Promise<TestBrowser> {
  if (!browserAvailable)
    throw new Error(`JPKI_TEST_BROWSER=1 but there is no chromium at ${CHROMIUM} (apt-get install chromium)`);
  const profile = mkdtempSync(join(tmpdir(), 'jpki-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
    locale: 'ja-JP',
    timezoneId: 'Asia/Tokyo',
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
  });
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * What a keyboard or screen-reader user needs from every view: the page language, landmarks, one h1,
 * a name for every control (from the accessibility tree, i.e. what assistive technology gets), a
 * <label> for every input, and text contrast of at least 4.5:1 (WCAG AA).
 */
export async function expectAccessible(page: Page, lang: 'ja' | 'en'): Promise<void> {
  expect(await page.getAttribute('html', 'lang')).toBe(lang);
  const tree = await page.locator('body').ariaSnapshot();
  expect(tree).toMatch(/- banner/);
  expect(tree).toMatch(/- main/);
  // A control without a name shows in the snapshot as its bare role.
  const unnamed = tree
    .split('\n')
    .filter((l) =>
      /^\s*- (textbox|checkbox|radio|button|combobox|link|spinbutton)\s*(\[[^\]]*\])?\s*:?\s*$/.test(l),
    );
  expect(unnamed, tree).toEqual([]);
  expect(await page.locator('h1').count()).toBe(1);

  const problems = await page.evaluate(() => {
    const out: string[] = [];
    for (const el of document.querySelectorAll<HTMLInputElement>('input, select, textarea')) {
      if (el.type === 'hidden') continue;
      if (!el.labels?.length && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
        out.push(`no label: ${el.outerHTML.slice(0, 120)}`);
    }
    const rgba = (c: string) => {
      const m = /rgba?\(([^)]+)\)/.exec(c);
      if (!m) return [0, 0, 0, 0];
      const p = m[1]!
        .split(/[ ,/]+/)
        .filter(Boolean)
        .map(Number);
      return [p[0]!, p[1]!, p[2]!, p[3] ?? 1];
    };
    const lum = ([r, g, b]: number[]) => {
      const f = (v: number) => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(r!) + 0.7152 * f(g!) + 0.0722 * f(b!);
    };
    const background = (el: Element | null): number[] => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgba(getComputedStyle(e).backgroundColor);
        if (c[3]! > 0.5) return c;
      }
      return [255, 255, 255, 1];
    };
    for (const el of document.querySelectorAll<HTMLElement>('body *')) {
      const text = [...el.childNodes]
        .filter((n) => n.nodeType === Node.TEXT_NODE)
        .map((n) => n.textContent ?? '')
        .join('')
        .trim();
      if (!text || el.closest('svg') || (el as HTMLButtonElement).disabled) continue;
      const style = getComputedStyle(el);
      const rect = el.getBoundingClientRect();
      if (style.visibility === 'hidden' || style.display === 'none' || rect.width <= 1 || rect.height <= 1)
        continue;
      const l1 = lum(rgba(style.color));
      const l2 = lum(background(el));
      const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
      if (ratio < 4.5) out.push(`contrast ${ratio.toFixed(2)} for "${text.slice(0, 40)}"`);
    }
    return out;
  });
  expect(problems).toEqual([]);
}

/** Text shown outside elements marked lang="ja" (resident data): must hold no Japanese in English mode. */
export async function japaneseOutsideData(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const out: string[] = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const text = n.textContent ?? '';
      if (!/[\u3040-\u30ff\u3400-\u9fff\uff00-\uffef]/.test(text)) continue;
      const el = n.parentElement;
      if (el?.closest('[lang="ja"]') || el?.closest('noscript')) continue;
      out.push(text.trim());
    }
    return out;
  });
}
