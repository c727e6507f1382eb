// Plays a person in the web console: headless Chromium signs in at the provider as USER
// (through BASE/console/), then runs STEPS (JSON) in order. Screenshots go to SHOTS.
// Usage: node console.mjs BASE USER SHOTS STEPS
// Steps (each an object; `within` narrows to the first element matching a CSS selector):
//   {"goto": "/console/live"}                      open a page of BASE
//   {"wait": "css"}                                wait until an element is visible
//   {"waitText": "css", "text": "…"}               wait until it contains the text
//   {"click": "Name", "role": "button"|"link", "dialog": "accept"|"dismiss"}
//                                                  click by accessible name (a confirm()
//                                                  that opens is answered as told)
//   {"fill": "Label", "value": "…"}                 fill the field with that label
//   {"select": "Label", "value": "…"}               choose an option
//                                                  (with "css": true, Label is a selector)
//   {"text": "css", "as": "key"}                   keep the element's text as output[key]
//   {"count": "Name", "role": "button", "as": "key"}  how many such elements there are
//   {"fetch": "/path", "method": "POST", "as": "key"}  a request from the page (its cookie
//                                                  and origin): output[key] = {status, body}
//   {"url": "key"}                                 keep the page's URL
//   {"shot": "name"}                               full-page screenshot SHOTS/name.png
//   {"signal": "name"}                             print {"signal": "name", output} on its own
//                                                  line, then wait for a line (or the end) on
//                                                  stdin: the test acts, then lets the steps
//                                                  go on to check
// Prints output as JSON on the last line. A step that fails prints the page's text with the error.
import { createInterface } from 'node:readline';
import { open, signIn } from './chromium.mjs';

const [base, user, shots, stepsJson] = process.argv.slice(2);
const steps = JSON.parse(stepsJson);
const output = {};
// The test's go-aheads after signals, one line each; the end of stdin lets every later one go.
const goAheads = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const { browser, close } = await open({ ignoreHTTPSErrors: true });
let page;
try {
  page = await browser.newPage();
  page.setDefaultTimeout(60_000);
  await page.goto(`${base}/console/`);
  await signIn(page, user);
  await Promise.all([
    page.waitForURL((u) => u.toString().startsWith(`${base}/console/`)),
    page.click('button[type="submit"]'),
  ]);
  for (const step of steps) {
    const scope = step.within ? page.locator(step.within).first() : page;
    if (step.goto !== undefined) {
      await page.goto(`${base}${step.goto}`);
    } else if (step.wait !== undefined) {
      await scope.locator(step.wait).first().waitFor();
    } else if (step.waitText !== undefined) {
      await scope.locator(step.waitText, { hasText: step.text }).first().waitFor();
    } else if (step.click !== undefined) {
      if (step.dialog) {
        page.once('dialog', (d) => (step.dialog === 'accept' ? d.accept() : d.dismiss()));
      }
      const target = scope.getByRole(step.role ?? 'button', { name: step.click, exact: true });
      await Promise.all([
        step.role === 'link' || step.navigates ? page.waitForEvent('load') : Promise.resolve(),
        target.first().click(),
      ]);
    } else if (step.fill !== undefined) {
      const field = step.css ? scope.locator(step.fill) : scope.getByLabel(step.fill);
      await field.first().fill(step.value);
    } else if (step.select !== undefined) {
      const field = step.css ? scope.locator(step.select) : scope.getByLabel(step.select);
      await field.first().selectOption(step.value);
    } else if (step.text !== undefined) {
      output[step.as] = await scope.locator(step.text).first().textContent();
    } else if (step.count !== undefined) {
      output[step.as] = await scope.getByRole(step.role ?? 'button', { name: step.count }).count();
    } else if (step.fetch !== undefined) {
      output[step.as] = await page.evaluate(async ({ url, method }) => {
        const r = await fetch(url, { method, credentials: 'same-origin' });
        return { status: r.status, body: await r.text() };
      }, { url: step.fetch, method: step.method ?? 'GET' });
    } else if (step.url !== undefined) {
      output[step.url] = page.url();
    } else if (step.signal !== undefined) {
      console.log(JSON.stringify({ signal: step.signal, output }));
      await goAheads.next();
    } else if (step.shot !== undefined) {
      await page.screenshot({ path: `${shots}/${step.shot}.png`, fullPage: true });
    } else {
      throw new Error(`unknown step ${JSON.stringify(step)}`);
    }
  }
  console.log(JSON.stringify(output));
} catch (e) {
  const text = page ? await page.textContent('body').catch(() => '') : '';
  console.error(`${e.message}\n--- ${page?.url()}\n${text}`);
  if (page) await page.screenshot({ path: `${shots}/failed-${Date.now()}.png`, fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await close();
  process.stdin.destroy();
}
