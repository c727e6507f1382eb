// Plays the person in the device flow: opens the verification URL, confirms the code, logs in
// as USER through oidc-provider's development login (any password) and consents, with plain
// HTTP and a cookie jar, as a browser would. Usage: node approve_device.mjs URL USER
// Prints {"ok": true} when the provider shows its success page.
const [start, user] = process.argv.slice(2);
const jar = new Map();

async function go(url, init = {}) {
  for (let hops = 0; hops < 10; hops++) {
    const headers = { ...(init.headers || {}) };
    if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      jar.set(pair.slice(0, i), pair.slice(i + 1));
    }
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location'), url).toString();
      init = {};
      continue;
    }
    return { url, html: await res.text() };
  }
  throw new Error('too many redirects');
}

function firstForm(page) {
  const m = page.html.match(/<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i);
  if (!m) return null;
  const fields = {};
  for (const input of m[2].matchAll(/<input[^>]*>/gi)) {
    const name = input[0].match(/name="([^"]*)"/);
    const value = input[0].match(/value="([^"]*)"/);
    if (name) fields[name[1]] = value ? value[1] : '';
  }
  return { action: new URL(m[1], page.url).toString(), fields };
}

let page = await go(start);
for (let step = 0; step < 6; step++) {
  if (/Sign-in Success|successfully|can close/i.test(page.html)) {
    console.log(JSON.stringify({ ok: true }));
    process.exit(0);
  }
  const form = firstForm(page);
  if (!form) break;
  if ('login' in form.fields) {
    form.fields.login = user;
    form.fields.password = 'any';
  }
  page = await go(form.action, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form.fields).toString(),
  });
}
console.log(JSON.stringify({ ok: false, url: page.url, html: page.html.slice(0, 2000) }));
process.exit(1);
