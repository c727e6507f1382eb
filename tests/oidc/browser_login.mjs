// Plays the person in the browser part of `sluice login` (authorization code + PKCE): headless
// Chromium (Debian `chromium`, driven by playwright-core) opens URL, signs in as USER at the
// provider's development login (any password), consents, and follows the redirect back to the
// CLI's loopback listener. Usage: node browser_login.mjs URL USER. Prints {"ok": true, "page": …}.
import { open, signIn } from './chromium.mjs';

const [url, user] = process.argv.slice(2);
const { browser, close } = await open();
try {
  const page = await browser.newPage();
  await page.goto(url);
  await signIn(page, user);
  // Consent, then the redirect to the CLI's loopback listener.
  await Promise.all([
    page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\/callback/),
    page.click('button[type="submit"]'),
  ]);
  const text = await page.textContent('body');
  console.log(JSON.stringify({ ok: true, page: text.trim().slice(0, 200) }));
} finally {
  await close();
}
