// Plays the person in the browser part of `sluice login` (authorization code + PKCE): headless
// Chromium (Debian `chromium`, driven by playwright-core) opens URL, signs in as USER at the
// provider's development login (any password), consents, and follows the redirect back to the
// CLI's loopback listener. Usage: node browser_login.mjs URL USER. Prints {"ok": true, "page": …}.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, user] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), 'sluice-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
try {
  const page = await browser.newPage();
  await page.goto(url);
  await page.fill('input[name="login"]', user);
  await page.fill('input[name="password"]', 'any');
  await page.click('button[type="submit"]');
  // Consent, then the redirect to the CLI's loopback listener.
  await page.waitForSelector('button[type="submit"]');
  await Promise.all([
    page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\/callback/),
    page.click('button[type="submit"]'),
  ]);
  const text = await page.textContent('body');
  console.log(JSON.stringify({ ok: true, page: text.trim().slice(0, 200) }));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
