// Plays a person opening an internal HTTP service through the gateway in a real browser:
// headless Chromium (Debian `chromium`, driven by playwright-core) opens URL on the gateway,
// is sent to the provider's sign-in, signs in as USER (any password), consents, and lands
// back on URL. Then it opens URL again (the session cookie alone must do) and, when given,
// AGAIN as well. Usage: node web_login.mjs URL USER [AGAIN].
// Prints {"first": <body text>, "second": <body text>, "again": <body text>, "cookies": [...]}.
import { open, signIn } from './chromium.mjs';

const [url, user, again] = process.argv.slice(2);
const { browser, close } = await open({ ignoreHTTPSErrors: true });
try {
  const page = await browser.newPage();
  await page.goto(url);
  await signIn(page, user);
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
  await close();
}
