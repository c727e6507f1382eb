// A real OpenID Provider (npm oidc-provider) for sluice's integration tests.
//
// Starts on 127.0.0.1 on a free port and prints one JSON line: {"issuer": "http://127.0.0.1:PORT"}.
// Clients: `ci-runner` (client credentials; access tokens are RS256 JWTs for the audience
// AUDIENCE, default `urn:sluice:gateway`, carrying a `groups` claim) and `other-app` (same, no groups).
//
// Test harness endpoints (not part of any OpenID protocol; they stand in for what an attacker
// or a misbehaving IdP would produce, signed with the provider's real key where that matters):
//   POST /test/sign    {"claims": {...}, "header": {...}, "key": "current"|"foreign"|"hs256-public"|"none"}
//                      -> {"token": "..."}
//   POST /test/rotate  -> a new signing key is put first (the old one stays published).
//   POST /test/groups  {"user": "alice", "groups": [...]} -> her groups from now on.
import http from 'node:http';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const AUDIENCE = process.env.AUDIENCE || 'urn:sluice:gateway';
const GROUPS = { 'ci-runner': ['engineering'], 'other-app': [] };
// People (code or device flow through the built-in development login; any password). Their groups
// can be changed with POST /test/groups to test that a change counts at the next login.
const PEOPLE = { alice: ['engineering'], bob: ['security'] };

async function newKey(kid) {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid, alg: 'RS256', use: 'sig' };
}

let keys = [await newKey('key-1')];
const foreign = await newKey('key-1'); // same kid, different key: a forgery
const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

function build() {
  const provider = new Provider(issuer, {
    clients: [
      ...Object.keys(GROUPS).map((id) => ({
        client_id: id,
        client_secret: `${id}-secret`,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_post',
      })),
      {
        client_id: 'sluice-cli',
        application_type: 'native',
        grant_types: [
          'authorization_code',
          'urn:ietf:params:oauth:grant-type:device_code',
          'refresh_token',
        ],
        // A native app's loopback redirect: any port is accepted (RFC 8252 §7.3).
        redirect_uris: ['http://127.0.0.1/callback'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      },
    ],
    scopes: ['openid', 'profile', 'offline_access', 'db'],
    claims: { openid: ['sub'], profile: ['preferred_username', 'groups'] },
    conformIdTokenClaims: false,
    findAccount: async (ctx, id) => ({
      accountId: id,
      claims: async () => ({ sub: id, preferred_username: id, groups: PEOPLE[id] || [] }),
    }),
    features: {
      clientCredentials: { enabled: true },
      deviceFlow: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => AUDIENCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'db',
          audience: AUDIENCE,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    extraTokenClaims: (ctx, token) => ({ groups: GROUPS[token.clientId] || [] }),
    jwks: { keys },
  });
  // The gateway's browser sign-in for HTTP connections redirects back to
  // https://127.0.0.1:PORT[/PREFIX]/.sluice/callback; a test gateway's port is only known once
  // it runs, so the login client accepts that callback on any port.
  const allowed = provider.Client.prototype.redirectUriAllowed;
  provider.Client.prototype.redirectUriAllowed = function (uri) {
    const gateway = /^https:\/\/127\.0\.0\.1:\d+(\/[A-Za-z0-9._~-]+)*\/\.sluice\/callback$/;
    return (this.clientId === 'sluice-cli' && gateway.test(uri)) || allowed.call(this, uri);
  };
  return provider.callback();
}

let app = build();

async function body(req) {
  let data = '';
  for await (const chunk of req) data += chunk;
  return data ? JSON.parse(data) : {};
}

async function sign({ claims = {}, header = {}, key = 'current' }) {
  const now = Math.floor(Date.now() / 1000);
  const payload = { iss: issuer, aud: AUDIENCE, iat: now, exp: now + 300, ...claims };
  for (const k of Object.keys(payload)) if (payload[k] === null) delete payload[k];
  if (key === 'none') {
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    return `${b64({ alg: 'none', typ: 'JWT', ...header })}.${b64(payload)}.`;
  }
  if (key === 'hs256-public') {
    // Algorithm confusion: HMAC keyed with the provider's public key.
    const { d, p, q, dp, dq, qi, ...pub } = keys[0];
    const secret = new TextEncoder().encode(JSON.stringify(pub));
    return new jose.SignJWT(payload).setProtectedHeader({ alg: 'HS256', kid: keys[0].kid, ...header }).sign(secret);
  }
  const jwk = key === 'foreign' ? foreign : keys[0];
  const priv = await jose.importJWK(jwk, 'RS256');
  return new jose.SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: jwk.kid, typ: 'at+jwt', ...header }).sign(priv);
}

server.on('request', async (req, res) => {
  try {
    if (req.method === 'POST' && req.url === '/test/sign') {
      const token = await sign(await body(req));
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ token }));
    }
    if (req.method === 'POST' && req.url === '/test/groups') {
      const { user, groups } = await body(req);
      PEOPLE[user] = groups;
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ user, groups }));
    }
    if (req.method === 'POST' && req.url === '/test/rotate') {
      keys = [await newKey(`key-${keys.length + 1}`), ...keys];
      app = build();
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ kid: keys[0].kid }));
    }
    return app(req, res);
  } catch (e) {
    res.statusCode = 500;
    res.end(JSON.stringify({ error: String(e) }));
  }
});

console.log(JSON.stringify({ issuer }));
// The test reads only that line; oidc-provider's own notices go to stderr from here on.
console.log = console.info = console.warn = (...args) => console.error(...args);
