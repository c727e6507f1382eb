// Plays a person opening an internal HTTP service through the gateway in a real browser:
// headless Chromium (Debian `chromium`, driven by playwright-core) opens URL on the gateway,
// is sent to the provider's sign-in, signs in as USER (any password), consents, and lands
// back on URL. Then it opens URL again (the session cookie alone must do) and, when given,
// AGAIN as well. Usage: node web_login.mjs URL USER [AGAIN].
// Prints {"first": <body text>, "second": <body text>, "again": <body text>, "cookies": [...]}.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, user, again] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), 'sluice-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  ignoreHTTPSErrors: true,
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
  await page.waitForSelector('button[type="submit"]');
  await Promise.all([
    page.waitForURL((u) => u.toString() === url),
    page.click('button[type="submit"]'),
  ]);
  const first = await page.textContent('body');
  await page.goto(url);
  const second = await page.textContent('body');
  let third = null;
  if (again) {
    await page.goto(again);
    third = await page.textContent('body');
  }
  const cookies = (await browser.cookies()).map((c) => ({
    name: c.name, path: c.path, secure: c.secure, httpOnly: c.httpOnly, sameSite: c.sameSite,
  }));
  console.log(JSON.stringify({ first, second, again: third, cookies }));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
