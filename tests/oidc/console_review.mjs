// Plays an approver deciding a held statement in the web console: headless Chromium opens
// URL (the console's reviews inbox), signs in at the provider as USER, waits for the row
// showing STATEMENT, gives a reason, clicks Approve, and waits for the inbox to come back
// with the outcome. Screenshots go to SHOTS (a directory) when given.
// Usage: node console_review.mjs URL USER STATEMENT [SHOTS]
// Prints {"before": <main text>, "after": <main text>}.
import { open, signIn } from './chromium.mjs';

const [url, user, statement, shots] = process.argv.slice(2);
const { browser, close } = await open({ ignoreHTTPSErrors: true });
try {
  const page = await browser.newPage();
  await page.goto(url);
  await signIn(page, user);
  await Promise.all([
    page.waitForURL((u) => u.toString() === url),
    page.click('button[type="submit"]'),
  ]);
  const row = page.locator('tr', { hasText: statement });
  await row.waitFor();
  if (shots) await page.screenshot({ path: `${shots}/console-reviews.png`, fullPage: true });
  const before = await page.textContent('main');
  await row.getByLabel('Reason').fill('checked the change ticket');
  await Promise.all([
    page.waitForURL(/\/console\/reviews\?done=/),
    row.getByRole('button', { name: 'Approve' }).click(),
  ]);
  const after = await page.textContent('main');
  if (shots) await page.screenshot({ path: `${shots}/console-reviews-decided.png`, fullPage: true });
  console.log(JSON.stringify({ before, after }));
} finally {
  await close();
}
