#!/usr/bin/env node
// Get real tokens from an already running entra.mjs, without a browser.
// No dependencies beyond Node's own (node:http, node:crypto). It uses node:http rather
// than the global fetch, because loading fetch (undici) alone costs 100-200 ms per run.
//
//   node tests/oidc/token.mjs --base http://127.0.0.1:PORT --user alice@contoso.test
//        [--authority common|organizations|<tenant guid or domain>|consumers]   (default: common)
//        [--client-id ID --client-secret S]      (default: the first fixture client)
//        [--redirect-uri URL]                    (default: http://127.0.0.1/callback)
//        [--scope "openid profile email"]        (default: openid profile email)
//
// Runs the authorization code flow (PKCE S256, state, nonce; the user is picked by
// login_hint, redirects are followed by hand as in smoke.mjs), redeems the code at the
// authority's token endpoint, checks the ID token (RS256 signature against the
// authority's JWKS, iss, aud, nonce), and prints one JSON line on stdout:
//
//   {"id_token":"…","access_token":"…","refresh_token":"…"|null,
//    "issuer":"{base}/{tid}/v2.0","jwks_uri":"…","client_id":"…"}
//
// `issuer` is the user's tenant issuer (the `{tenantid}` template filled in with the
// ID token's `tid` on /common and /organizations). `jwks_uri` is the one the
// authority's discovery document names. `refresh_token` is null unless the scope
// has offline_access. On any failure: the error on stderr, exit status 1.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

const DEFAULT_CLIENT_ID = '11111111-2222-4333-8444-555555555555';
const DEFAULT_CLIENT_SECRET = 'p0rtcullis~Test.secret_value-1';
const TIMEOUT_MS = 10_000; // per request; a stuck server should not hang a test

const USAGE = 'usage: node tests/oidc/token.mjs --base http://127.0.0.1:PORT --user UPN '
  + '[--authority common|organizations|<tenant guid>] [--client-id ID --client-secret S] '
  + '[--redirect-uri URL] [--scope "openid profile email"]\n';

function fail(message) {
  process.stderr.write(`token.mjs: ${message}\n`);
  process.exit(1);
}

// ---------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------

const opts = {
  base: undefined, user: undefined, authority: 'common', clientId: undefined, clientSecret: undefined,
  redirectUri: 'http://127.0.0.1/callback', scope: 'openid profile email',
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 1) {
  const a = argv[i];
  const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
  const value = () => {
    const v = inline !== undefined ? inline : argv[++i];
    if (v === undefined) fail(`${flag} needs a value\n${USAGE}`);
    return v;
  };
  switch (flag) {
    case '--base': opts.base = value(); break;
    case '--user': opts.user = value(); break;
    case '--authority': opts.authority = value(); break;
    case '--client-id': opts.clientId = value(); break;
    case '--client-secret': opts.clientSecret = value(); break;
    case '--redirect-uri': opts.redirectUri = value(); break;
    case '--scope': opts.scope = value(); break;
    case '--help': case '-h': process.stdout.write(USAGE); process.exit(0); break;
    default: fail(`unknown argument ${a}\n${USAGE}`);
  }
}
if (!opts.base || !opts.user) fail(`--base and --user are required\n${USAGE}`);
let base;
try {
  base = new URL(opts.base).origin; // http://127.0.0.1:PORT, no trailing slash
} catch {
  fail(`--base is not a URL: ${opts.base}`);
}
let redirect;
try {
  redirect = new URL(opts.redirectUri);
} catch {
  fail(`--redirect-uri is not a URL: ${opts.redirectUri}`);
}
if (opts.clientSecret !== undefined && opts.clientId === undefined) fail('--client-secret needs --client-id');
const clientId = opts.clientId ?? DEFAULT_CLIENT_ID;
const authority = encodeURIComponent(opts.authority);

// ---------------------------------------------------------------------------------
// Helpers (copied from smoke.mjs): a cookie-keeping "browser", PKCE, JWT.
// `fetch` here is a minimal stand-in on node:http: no redirects followed, text bodies.
// ---------------------------------------------------------------------------------

const agent = new http.Agent({ keepAlive: true });
function fetch(url, { method = 'GET', headers = {}, body } = {}) {
  const u = new URL(url);
  if (u.protocol !== 'http:') return Promise.reject(new Error(`only http:// is supported: ${u}`));
  const payload = body === undefined ? undefined : Buffer.from(String(body));
  return new Promise((resolve, reject) => {
    const req = http.request(u, {
      method, agent, timeout: TIMEOUT_MS,
      headers: { ...headers, ...(payload ? { 'content-length': payload.length } : {}) },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode,
          headers: {
            get: (name) => { const v = res.headers[name.toLowerCase()]; return Array.isArray(v) ? v.join(', ') : (v ?? null); },
            getSetCookie: () => res.headers['set-cookie'] ?? [],
          },
          text: async () => text,
        });
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`request timed out after ${TIMEOUT_MS} ms: ${method} ${u}`), { name: 'TimeoutError' })));
    req.on('error', reject);
    req.end(payload);
  });
}

const isCallback = (u) => u.origin !== base || (u.pathname === redirect.pathname && u.hostname === redirect.hostname);

class Browser {
  jar = new Map(); // "name\tpath" -> { name, value, path }

  cookieHeader(url) {
    const p = new URL(url).pathname;
    return [...this.jar.values()]
      .filter((c) => p === c.path || p.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`).join('; ');
  }

  store(res, url) {
    for (const sc of res.headers.getSetCookie()) {
      const [pair, ...attrs] = sc.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      let cpath = new URL(url).pathname.replace(/\/[^/]*$/, '') || '/';
      let expired = value === '';
      for (const a of attrs) {
        const [k, v = ''] = a.trim().split('=');
        if (k.toLowerCase() === 'path') cpath = v;
        if (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now()) expired = true;
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
      }
      const key = `${name}\t${cpath}`;
      if (expired) this.jar.delete(key); else this.jar.set(key, { name, value, path: cpath });
    }
  }

  // Follows redirects inside the provider; stops at the RP's callback (redirect or form_post).
  async go(url, init = {}) {
    let next = new URL(url);
    let method = init.method ?? 'GET';
    let body = init.body;
    for (let hops = 0; hops < 20; hops += 1) {
      const headers = { cookie: this.cookieHeader(next), ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) };
      const res = await fetch(next, { method, body, headers });
      this.store(res, next);
      if (res.status >= 300 && res.status < 400) {
        const loc = new URL(res.headers.get('location'), next);
        if (isCallback(loc)) return { kind: 'redirect', url: loc, params: new URLSearchParams(loc.search || loc.hash.slice(1)) };
        next = loc; method = 'GET'; body = undefined;
        continue;
      }
      const text = await res.text();
      if (/<form method="post" action="([^"]+)"/.test(text)) {
        const action = /<form method="post" action="([^"]+)"/.exec(text)[1].replace(/&amp;/g, '&');
        const params = new URLSearchParams();
        for (const m of text.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"\/>/g)) {
          params.set(m[1], m[2].replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&'));
        }
        if (isCallback(new URL(action))) return { kind: 'form_post', url: new URL(action), params, status: res.status };
        next = new URL(action); method = 'POST'; body = params.toString();
        continue;
      }
      return { kind: 'page', status: res.status, text, url: next };
    }
    throw new Error('too many redirects');
  }
}

const b64u = (buf) => Buffer.from(buf).toString('base64url');
function pkce() {
  const verifier = b64u(crypto.randomBytes(32));
  return { verifier, challenge: b64u(crypto.createHash('sha256').update(verifier).digest()) };
}
function decodeJwt(jwt) {
  const [h, p] = jwt.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')) };
}
function verifyJwt(jwt, jwks) {
  const [h, p, s] = jwt.split('.');
  const { header } = decodeJwt(jwt);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk || header.alg !== 'RS256') return { ok: false, jwk };
  const key = crypto.createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: jwk.e }, format: 'jwk' });
  return { ok: crypto.verify('RSA-SHA256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url')), jwk };
}
async function getJson(url, init) {
  const res = await fetch(url, init);
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = undefined; }
  return { status: res.status, headers: res.headers, body, text };
}
// An HTML error page's AADSTS line, or the start of its text.
const pageError = (text) => (/<p id="aadsts">([^<]*)<\/p>/.exec(text ?? '')?.[1] ?? String(text ?? '').slice(0, 300))
  .replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

// ---------------------------------------------------------------------------------
// The flow
// ---------------------------------------------------------------------------------

async function main() {
  // Discovery for the authority (also checks that the server is up and the authority exists).
  const disco = await getJson(`${base}/${authority}/v2.0/.well-known/openid-configuration`);
  if (disco.status !== 200 || !disco.body?.issuer) {
    throw new Error(`discovery at /${opts.authority} failed: HTTP ${disco.status} ${disco.body?.error_description?.split('\r\n')[0] ?? disco.text.slice(0, 300)}`);
  }
  const { issuer: authorityIssuer, jwks_uri: jwksUri, authorization_endpoint: authzEndpoint, token_endpoint: tokenEndpoint } = disco.body;

  let clientSecret = opts.clientSecret;
  if (clientSecret === undefined) {
    if (clientId === DEFAULT_CLIENT_ID) {
      clientSecret = DEFAULT_CLIENT_SECRET;
    } else {
      // Another fixture client: its secret is published by the admin endpoint.
      const fx = await getJson(`${base}/_admin/fixtures`);
      clientSecret = fx.body?.clients?.find((c) => c.client_id === clientId)?.client_secret;
      if (clientSecret === undefined) throw new Error(`no --client-secret given, and client ${clientId} is not in /_admin/fixtures`);
    }
  }

  // Authorization request; the user is signed in by login_hint with redirects only.
  const { verifier, challenge } = pkce();
  const state = b64u(crypto.randomBytes(12));
  const nonce = b64u(crypto.randomBytes(12));
  const authz = new URL(authzEndpoint);
  for (const [k, v] of Object.entries({
    client_id: clientId, response_type: 'code', redirect_uri: opts.redirectUri, scope: opts.scope,
    login_hint: opts.user, state, nonce, code_challenge: challenge, code_challenge_method: 'S256',
  })) authz.searchParams.set(k, v);
  const out = await new Browser().go(authz);
  if (out.kind === 'page') throw new Error(`authorization stopped at a page (HTTP ${out.status}): ${pageError(out.text)}`);
  const cb = out.params;
  if (cb.get('error')) throw new Error(`authorization error ${cb.get('error')}: ${(cb.get('error_description') ?? '').split('\r\n')[0]}`);
  if (cb.get('state') !== state) throw new Error(`state mismatch on the callback (sent ${state}, got ${cb.get('state')})`);
  const code = cb.get('code');
  if (!code) throw new Error(`no code on the callback: ${out.url}`);

  // Token request (client_secret_post) at the same authority.
  const form = new URLSearchParams({
    grant_type: 'authorization_code', code, redirect_uri: opts.redirectUri, code_verifier: verifier,
    client_id: clientId, client_secret: clientSecret,
  });
  const tok = await getJson(tokenEndpoint, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, body: form,
  });
  if (tok.status !== 200 || !tok.body?.id_token || !tok.body.access_token) {
    const e = tok.body?.error ? `${tok.body.error}: ${(tok.body.error_description ?? '').split('\r\n')[0]}` : tok.text.slice(0, 300);
    throw new Error(`token endpoint: HTTP ${tok.status} ${e}`);
  }

  // Check the ID token as an RP would: signature, issuer (Entra's multi-tenant rule), aud, nonce.
  const { payload: claims } = decodeJwt(tok.body.id_token);
  const jwks = await getJson(jwksUri);
  if (jwks.status !== 200 || !Array.isArray(jwks.body?.keys)) throw new Error(`JWKS at ${jwksUri}: HTTP ${jwks.status}`);
  const sig = verifyJwt(tok.body.id_token, jwks.body);
  if (!sig.ok) throw new Error(`ID token signature does not verify against ${jwksUri}`);
  if (!/^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$/.test(claims.tid ?? '')) throw new Error(`ID token tid is not a GUID: ${claims.tid}`);
  const issuer = authorityIssuer.replace('{tenantid}', claims.tid);
  if (claims.iss !== issuer) throw new Error(`ID token iss ${claims.iss} is not ${issuer}`);
  if (sig.jwk.issuer !== undefined && sig.jwk.issuer.replace('{tenantid}', claims.tid) !== issuer) {
    throw new Error(`signing key issuer ${sig.jwk.issuer} does not match ${issuer}`);
  }
  if (claims.aud !== clientId) throw new Error(`ID token aud ${JSON.stringify(claims.aud)} is not ${clientId}`);
  if (claims.nonce !== nonce) throw new Error('ID token nonce does not match');

  return {
    id_token: tok.body.id_token,
    access_token: tok.body.access_token,
    refresh_token: tok.body.refresh_token ?? null,
    issuer,
    jwks_uri: jwksUri,
    client_id: clientId,
  };
}

try {
  const result = await main();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  agent.destroy(); // close kept-alive sockets so the process exits at once
} catch (err) {
  fail(err?.code === 'ECONNREFUSED' ? `cannot connect to ${base} (is entra.mjs running?): ${err.message}` : (err?.message ?? String(err)));
}
