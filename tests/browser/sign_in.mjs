#!/usr/bin/env node
// Sign-in end to end in a real browser: Debian's headless Chromium, driven
// by playwright-core, against the real `portcullis` binary and the
// Entra-shaped provider (tests/oidc). The browser itself follows every
// redirect, runs the provider's `form_post` page and keeps every cookie;
// tests/sign_in.rs covers the same flow with an HTTP client.
//
//   PORTCULLIS_BIN=target/debug/portcullis node tests/browser/sign_in.mjs
//
// Needs /usr/bin/chromium (CHROMIUM overrides), `npm ci --prefix
// tests/browser` and `npm ci --prefix tests/oidc`. Exits 0 when every check
// passes; prints `browser: N passed, M failed`. DEBUG=1 prints every
// request the browser made in each sign-in (DEBUG=2 adds their headers).
//
// Scenarios:
//   1. alice, query response mode, proxy on http://127.0.0.1:P.
//   2. bob (another tenant, not on the list): 403, the upstream never sees him.
//   3. alice, `response_mode: form_post`, proxy on http://127.0.0.1:P: the
//      provider (also 127.0.0.1, another port) posts to the callback. Ports
//      do not make sites: Chromium sends this POST as `same-site`.
//   4. alice, `form_post`, proxy on http://[::1]:P: another site than the
//      provider's 127.0.0.1, so the POST is truly cross-site, and only the
//      `SameSite=None; Secure` flow cookie can ride along. A `Lax` probe
//      cookie shows that Chromium did treat it as cross-site.
//   5. alice, then bob, through Debian's nginx (`auth_request`, the
//      documented docs/forward-auth/nginx.conf) with `portcullis
//      forward-auth --gateway nginx` as its auth service (NGINX overrides
//      /usr/sbin/nginx).
//   6. alice, then bob, with `saml` at the SAML test IdP (tests/saml/idp.py,
//      Debian's python3 with xmlsec1 and pysaml2): an AuthnRequest by
//      redirect, the IdP's auto-submitting HTTP-POST form run by Chromium.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const started = Date.now();

const CLIENT_ID = '11111111-2222-4333-8444-555555555555';
const SECRET = 'p0rtcullis~Test.secret_value-1';
const BIN = path.resolve(root, process.env.PORTCULLIS_BIN || 'target/debug/portcullis');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const NGINX = process.env.NGINX || '/usr/sbin/nginx';
// The flags Chromium needs on this machine's closed network.
const CHROMIUM_ARGS = [
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const STEP_TIMEOUT = 20_000;

// ---------------------------------------------------------------------------
// Checks and clean-up
// ---------------------------------------------------------------------------

let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  if (ok) {
    passed += 1;
    process.stdout.write(`ok   - ${name}\n`);
  } else {
    failed += 1;
    const d = detail === undefined ? '' : `: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`;
    process.stdout.write(`FAIL - ${name}${d}\n`);
  }
  return ok;
}

const children = new Set();
let browser;
let tmp;
let cleaned = false;

function killChildren() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  children.clear();
}

async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  if (browser) await browser.close().catch(() => {});
  killChildren();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}

// Whatever happens, leave nothing running (Playwright kills its own
// Chromium on exit as well).
process.on('exit', () => {
  killChildren();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    process.stdout.write(`FAIL - interrupted (${sig})\n`);
    killChildren();
    process.exit(1);
  });
}
const watchdog = setTimeout(() => {
  process.stdout.write('FAIL - browser sign-in test timed out after 180 s\n');
  killChildren();
  process.exit(1);
}, 180_000);
watchdog.unref();

// ---------------------------------------------------------------------------
// The provider, the upstream and the proxy
// ---------------------------------------------------------------------------

/** Spawns a process and resolves with the first line `pick` accepts. */
function spawnUntil(name, cmd, args, stream, pick) {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d) => { out.stdout += d; });
  child.stderr.on('data', (d) => { out.stderr += d; });
  child.on('exit', () => children.delete(child));
  const ready = new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(
      `${name} did not start in 60 s:\nstdout: ${out.stdout.slice(-1000)}\nstderr: ${out.stderr.slice(-2000)}`)), 60_000);
    child[stream].on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const got = pick(line);
        if (got !== undefined) {
          clearTimeout(timer);
          resolve(got);
        }
      }
    });
    child.on('error', (e) => { clearTimeout(timer); reject(new Error(`${name}: ${e.message}`)); });
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? sig}) before it was ready:\n${out.stderr.slice(-2000)}`));
    });
  });
  return { child, out, ready };
}

async function startIdp() {
  // Its stdin stays a pipe, held open until this script exits: the provider
  // exits when it closes.
  const { child, ready } = spawnUntil(
    'the provider (tests/oidc/entra.mjs)',
    process.execPath,
    [
      path.join(root, 'tests', 'oidc', 'entra.mjs'),
      '--port', '0',
      '--redirect-uri', 'http://127.0.0.1/ngrok/callback',
      // Scenario 4's endpoint: a loopback URI too, so its port is not compared.
      '--redirect-uri', 'http://[::1]/ngrok/callback',
    ],
    'stdout',
    readyLine,
  );
  const info = await ready;
  return { child, base: info.base };
}

/** An upstream that answers every request with it, as JSON. */
async function startEcho() {
  const seen = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://upstream');
    const body = {
      method: req.method,
      path: url.pathname,
      query: url.search.replace(/^\?/, ''),
      headers: req.headers,
    };
    seen.push(body);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.unref();
  return { port: server.address().port, seen };
}

/** A server on `host` that sets a Lax and a `SameSite=None; Secure` cookie. */
async function probeServer(host) {
  const server = http.createServer((req, res) => {
    res.writeHead(200, {
      'content-type': 'text/plain',
      'set-cookie': ['probe_lax=1; Path=/; SameSite=Lax', 'probe_none=1; Path=/; SameSite=None; Secure'],
    });
    res.end('probes set\n');
  });
  const bind = host.replace(/^\[|\]$/g, '');
  await new Promise((resolve) => server.listen(0, bind, resolve));
  server.unref();
  return `http://${host}:${server.address().port}/`;
}

/** The seed policy of tests/sign_in.rs, with alice alone on the list. */
function seedPolicy(idpBase, extra = '') {
  return `
on_http_request:
  - actions:
      - type: oauth
        config:
          provider: microsoft
          authority_host: ${idpBase}
          client_id: "${CLIENT_ID}"
          client_secret: "${SECRET}"
          scopes: [openid, email, profile]
${extra}
  - expressions:
      - "!(actions.ngrok.oauth.identity.email in ['alice@contoso.test'])"
    actions:
      - type: deny
  - actions:
      - type: add-headers
        config:
          headers:
            x-email: "\${actions.ngrok.oauth.identity.email}"
`;
}

const FORM_POST = '          authz_url_params:\n            response_mode: form_post';

/** A test provider's `{"ready": true, ...}` line, parsed. */
function readyLine(line) {
  try {
    const j = JSON.parse(line);
    return j.ready ? j : undefined;
  } catch {
    return undefined;
  }
}

/** The address of a `listening on ADDR` line of portcullis's JSON log. */
function listeningOn(line) {
  try {
    const m = /^listening on (\S+)$/.exec(JSON.parse(line)?.fields?.message ?? '');
    return m ? m[1] : undefined;
  } catch {
    return undefined;
  }
}

let policyCount = 0;
async function startProxy(policy, upstreamPort, listen) {
  policyCount += 1;
  const file = path.join(tmp, `policy-${policyCount}.yml`);
  fs.writeFileSync(file, policy);
  const { child, out, ready } = spawnUntil(
    'portcullis',
    BIN,
    [
      'http', String(upstreamPort),
      '--listen', listen,
      '--traffic-policy-file', file,
      '--log-format', 'json',
    ],
    'stderr',
    listeningOn,
  );
  const addr = await ready;
  return {
    child,
    out,
    origin: `http://${addr}`,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

/** `portcullis forward-auth --gateway nginx` with `policy`. */
async function startForwardAuth(policy) {
  policyCount += 1;
  const file = path.join(tmp, `policy-${policyCount}.yml`);
  fs.writeFileSync(file, policy);
  const { child, out, ready } = spawnUntil(
    'portcullis forward-auth',
    BIN,
    ['forward-auth', '--gateway', 'nginx', '--listen', '127.0.0.1:0', '--traffic-policy-file', file, '--log-format', 'json'],
    'stderr',
    listeningOn,
  );
  return { child, out, addr: await ready };
}

/** A free loopback port. */
async function freePort() {
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** nginx with the documented configuration, in front of the echo upstream. */
async function startNginx(portcullisAddr, upstreamPort) {
  if (!fs.existsSync(NGINX)) throw new Error(`no nginx at ${NGINX} (apt-get install nginx-light, or set NGINX)`);
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(tmp, 'nginx-'));
  const server = fs.readFileSync(path.join(root, 'docs', 'forward-auth', 'nginx.conf'), 'utf8')
    .replaceAll('127.0.0.1:4180', portcullisAddr)
    .replaceAll('127.0.0.1:8080', `127.0.0.1:${upstreamPort}`)
    .replaceAll('127.0.0.1:8000', `127.0.0.1:${port}`);
  const conf = `daemon off;\nmaster_process off;\nworker_processes 1;\npid ${dir}/nginx.pid;\n`
    + `error_log ${dir}/error.log;\nevents { worker_connections 256; }\nhttp {\naccess_log off;\n`
    + ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${dir}/${t};\n`).join('')
    + `${server}\n}\n`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const child = spawn(NGINX, ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
  children.add(child);
  child.on('exit', () => children.delete(child));
  const deadline = Date.now() + 15_000;
  for (;;) {
    const up = await new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/.portcullis/verify' }, (res) => { res.resume(); resolve(true); });
      req.on('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      throw new Error(`nginx did not start: ${fs.readFileSync(path.join(dir, 'error.log'), 'utf8').slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return `http://127.0.0.1:${port}`;
}

/**
 * The jar holds an HttpOnly session cookie for `origin`, and a reload is
 * served without a trip to the provider.
 */
async function sessionHolds(label, user, origin) {
  const jar = await user.context.cookies(origin);
  const session = jar.find((c) => c.name.startsWith('portcullis_session_'));
  check(`${label}: an HttpOnly session cookie`, !!session && session.httpOnly, jar.map((c) => c.name));
  const trips = user.toProvider();
  const again = await user.page.reload({ waitUntil: 'load', timeout: STEP_TIMEOUT });
  check(`${label}: a reload is served (200) without the provider`,
    again?.status() === 200 && user.toProvider() === trips, `${again?.status()}, ${user.toProvider() - trips} trips`);
}

/**
 * Alice signs in through nginx; bob, not on the list, is denied there. The
 * identity reaches the app as nginx copied it from Portcullis's answer.
 */
async function throughNginx(label, idpBase, origin, echo) {
  const alice = await userContext(idpBase, 'alice@contoso.test');
  const target = `${origin}/private?x=1`;
  const res = await visit(alice, origin, target);
  check(`${label}: alice lands on the echo page through nginx (200)`, res.status() === 200,
    `${res.status()} at ${res.url()}: ${(await res.text().catch(() => '')).slice(0, 300)}`);
  check(`${label}: back where she started (${target})`, alice.page.url() === target, alice.page.url());
  check(`${label}: the browser went through the provider`, alice.toProvider() > 0, alice.toProvider());
  const echoed = await echoOf(alice.page);
  check(`${label}: the app got X-Forwarded-Email: alice@contoso.test from nginx`,
    echoed.headers?.['x-forwarded-email'] === 'alice@contoso.test', echoed);
  check(`${label}: the app got a signed assertion`,
    /^[\w-]+\.[\w-]+\.[\w-]+$/.test(echoed.headers?.['x-portcullis-jwt-assertion'] ?? ''), echoed.headers);
  await sessionHolds(label, alice, origin);
  await alice.context.close();
  await bobIsDenied(label, idpBase, origin, echo);
}

/** The SAML test IdP, on a free loopback port. */
async function startSamlIdp() {
  const { ready } = spawnUntil(
    'the SAML IdP (tests/saml/idp.py)',
    '/usr/bin/python3',
    [path.join(root, 'tests', 'saml', 'idp.py'), 'serve'],
    'stdout',
    readyLine,
  );
  return (await ready).base;
}

/** The seed policy with `saml` instead of `oauth`. */
function samlPolicy(samlBase) {
  return `
on_http_request:
  - actions:
      - type: saml
        config:
          idp_metadata_url: ${samlBase}/metadata
  - expressions:
      - "!(actions.ngrok.saml.identity.email in ['alice@contoso.test'])"
    actions:
      - type: deny
  - actions:
      - type: add-headers
        config:
          headers:
            x-email: "\${actions.ngrok.saml.identity.email}"
`;
}

/** Alice signs in with SAML; bob, not on the list, is denied. */
async function samlSignIn(label, samlBase, proxy, echo) {
  const alice = await userContext(samlBase, 'alice@contoso.test');
  const target = `${proxy.origin}/private?x=1`;
  const res = await visit(alice, proxy.origin, target);
  check(`${label}: alice lands on the echo page (200)`, res.status() === 200,
    `${res.status()} at ${res.url()}: ${(await res.text().catch(() => '')).slice(0, 300)}`);
  check(`${label}: back where she started (${target})`, alice.page.url() === target, alice.page.url());
  check(`${label}: the browser went through the IdP`, alice.toProvider() > 0, alice.toProvider());
  const acs = alice.log.filter((r) => r.origin === proxy.origin && new URL(r.url).pathname === '/ngrok/saml/acs');
  check(`${label}: the IdP's form was posted to the ACS by the browser`,
    acs.length === 1 && acs[0].method === 'POST', acs.map((r) => `${r.method} ${r.url}`));
  const echoed = await echoOf(alice.page);
  check(`${label}: the upstream got x-email: alice@contoso.test`, echoed.headers?.['x-email'] === 'alice@contoso.test', echoed);
  await sessionHolds(label, alice, proxy.origin);
  await alice.context.close();
  await bobIsDenied(label, samlBase, proxy.origin, echo, 'bob@contoso.test');
}

// ---------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------

/**
 * A fresh browser context (its own cookie jar) for one user. The provider
 * signs in whoever `login_hint` names: the user "types their name" by the
 * hint being added to the navigation to the provider's authorization
 * endpoint. Every other request goes through untouched.
 */
async function userContext(idpBase, user) {
  const context = await browser.newContext();
  const idpOrigin = new URL(idpBase).origin;
  const log = []; // every request the browser made: { method, url, origin, request }
  context.on('request', (request) => {
    const u = new URL(request.url());
    log.push({ method: request.method(), url: request.url(), origin: u.origin, request });
  });
  const page = await context.newPage();
  // The hint is added by a redirect that the browser follows like any other.
  // Playwright's page.route() sees only the first URL of a navigation, not
  // its redirect hops, and the provider is reached by a redirect from the
  // proxy: so the hop is paused with Chromium's own Fetch domain.
  const cdp = await context.newCDPSession(page);
  cdp.on('Fetch.requestPaused', (ev) => {
    const u = new URL(ev.request.url);
    let reply;
    const signInPage = u.pathname.endsWith('/oauth2/v2.0/authorize') || u.pathname === '/sso';
    if (signInPage && !u.searchParams.has('login_hint')) {
      u.searchParams.set('login_hint', user);
      reply = cdp.send('Fetch.fulfillRequest', {
        requestId: ev.requestId,
        responseCode: 302,
        responseHeaders: [{ name: 'Location', value: u.href }, { name: 'Cache-Control', value: 'no-store' }],
      });
    } else {
      reply = cdp.send('Fetch.continueRequest', { requestId: ev.requestId });
    }
    reply.catch((e) => process.stdout.write(`# Fetch: ${e.message}\n`));
  });
  await cdp.send('Fetch.enable', { patterns: [{ urlPattern: `${idpOrigin}/*`, requestStage: 'Request' }] });
  return {
    context,
    page,
    log,
    toProvider: () => log.filter((r) => r.origin === idpOrigin).length,
  };
}

/**
 * Opens `url` and waits until the browser lands back on the proxy with a
 * response that is not a redirect (the provider's redirects and its
 * `form_post` page in between are the browser's business).
 */
async function visit(b, proxyOrigin, url) {
  const landed = b.page.waitForResponse(
    (r) => r.request().isNavigationRequest()
      && r.frame() === b.page.mainFrame()
      && new URL(r.url()).origin === proxyOrigin
      && !(r.status() >= 300 && r.status() < 400),
    { timeout: STEP_TIMEOUT },
  );
  // Resolve on the first committed document: with form_post that is the
  // provider's auto-submitting page, which navigates on by itself.
  // An error status with an empty body (a deny's 403) makes Chromium show
  // its own error page, and goto() throw: what counts is where it landed.
  const gone = await b.page.goto(url, { waitUntil: 'commit', timeout: STEP_TIMEOUT }).then(() => null, (e) => e);
  let res;
  try {
    res = await landed;
  } catch (e) {
    const trail = b.log.map((r) => `${r.method} ${r.url}`).join('\n  ');
    const why = gone ? `; goto: ${gone.message.split('\n')[0]}` : '';
    throw new Error(`never landed back on ${proxyOrigin} (${e.message.split('\n')[0]}${why})\n  now at ${b.page.url()}\n  requests:\n  ${trail}`);
  }
  await b.page.waitForLoadState('load', { timeout: STEP_TIMEOUT });
  if (process.env.DEBUG) {
    for (const r of b.log) {
      const resp = await r.request.response().catch(() => null);
      process.stdout.write(`#   ${r.method} ${r.url} -> ${resp?.status()}\n`);
      if (process.env.DEBUG === '2') process.stdout.write(`#     ${JSON.stringify(await r.request.allHeaders())}\n`);
    }
  }
  return res;
}

/** The echo upstream's JSON, as the page shows it. */
async function echoOf(page) {
  const text = await page.evaluate(() => document.body.innerText);
  try {
    return JSON.parse(text);
  } catch {
    return { unparsed: text.slice(0, 500) };
  }
}

const isCallback = (r, proxyOrigin) => r.origin === proxyOrigin && new URL(r.url).pathname === '/ngrok/callback';

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

/** Alice signs in; the session carries her on a reload without the provider. */
async function aliceSignsIn(label, idpBase, proxy, echo, { formPost, crossSite }) {
  const alice = await userContext(idpBase, 'alice@contoso.test');
  const proxyUrl = new URL(proxy.origin);
  if (crossSite) {
    // Probes in the proxy host's jar (cookies do not tell ports apart), set
    // by a real Set-Cookie over http: which of them ride on the provider's
    // POST to the callback tells how Chromium classed that POST.
    const probe = await probeServer(proxyUrl.hostname);
    const r = await alice.page.goto(probe, { timeout: STEP_TIMEOUT });
    check(`${label}: probe cookies set on ${proxyUrl.hostname} over http`, r?.status() === 200, r?.status());
    const jar = await alice.context.cookies(proxy.origin);
    check(`${label}: Chromium kept the SameSite=None; Secure probe from http://${proxyUrl.host}`,
      jar.some((c) => c.name === 'probe_none' && c.secure && c.sameSite === 'None'), jar);
  }
  const target = `${proxy.origin}/private?x=1`;
  const privateHits = () => echo.seen.filter((r) => r.path === '/private').length;
  const upstreamBefore = privateHits();

  const res = await visit(alice, proxy.origin, target);
  check(`${label}: the browser lands on the echo page (200)`, res.status() === 200,
    `${res.status()} at ${res.url()}: ${(await res.text().catch(() => '')).slice(0, 300)}`);
  check(`${label}: back where she started (${target})`, alice.page.url() === target, alice.page.url());
  const echoed = await echoOf(alice.page);
  check(`${label}: the upstream saw /private?x=1`, echoed.path === '/private' && echoed.query === 'x=1', echoed);
  check(`${label}: the upstream got x-email: alice@contoso.test`, echoed.headers?.['x-email'] === 'alice@contoso.test', echoed);
  check(`${label}: the upstream got /private once`, privateHits() === upstreamBefore + 1, privateHits() - upstreamBefore);
  check(`${label}: the browser went through the provider`, alice.toProvider() > 0, alice.toProvider());

  // The callback: one request, by the browser, as the response mode says.
  const callbacks = alice.log.filter((r) => isCallback(r, proxy.origin));
  const method = formPost ? 'POST' : 'GET';
  check(`${label}: the provider answered at the callback by ${method}`,
    callbacks.length === 1 && callbacks[0].method === method,
    callbacks.map((r) => `${r.method} ${r.url}`));
  if (callbacks.length === 1) {
    const cb = callbacks[0].request;
    // The proxy took the answer (a missing flow cookie is a 400,
    // ERR_NGROK_3121) and sent the browser back where it started.
    const cbRes = await cb.response();
    const back = cbRes && (await cbRes.headerValue('location'));
    check(`${label}: the callback sent the browser back to /private?x=1 (302)`,
      cbRes?.status() === 302 && back !== null && new URL(back, proxy.origin).href === target,
      `${cbRes?.status()} ${back}`);
    if (formPost) {
      // A new navigation, so its raw headers are known (a redirect hop's
      // are not, to Playwright): the Cookie header as Chromium sent it.
      const headers = await cb.allHeaders();
      const cookies = headers.cookie ?? '';
      check(`${label}: the callback POST carried the flow cookie`, /(^|; )portcullis_flow_[^=]+=/.test(cookies), cookies);
      check(`${label}: the callback POST is a form`, /application\/x-www-form-urlencoded/.test(headers['content-type'] ?? ''), headers['content-type']);
      const site = headers['sec-fetch-site'];
      const want = crossSite ? 'cross-site' : 'same-site';
      check(`${label}: Chromium sent the POST as ${want} (Sec-Fetch-Site)`, site === want, site);
      if (crossSite) {
        check(`${label}: the SameSite=None probe rode on the cross-site POST`, /(^|; )probe_none=1/.test(cookies), cookies);
        check(`${label}: the SameSite=Lax probe did not (the cookie engine too took the POST as cross-site)`,
          !/(^|; )probe_lax=/.test(cookies), cookies);
      }
    }
    // The flow cookie as Chromium stored it, from the proxy's first answer.
    const first = alice.log.find((r) => r.origin === proxy.origin);
    const firstRes = first && await first.request.response();
    const setCookie = firstRes ? (await firstRes.headerValue('set-cookie')) ?? '' : '';
    const flowAttrs = formPost ? /SameSite=None; Secure/ : /SameSite=Lax/;
    check(`${label}: the flow cookie was set with ${formPost ? 'SameSite=None; Secure' : 'SameSite=Lax'}`,
      /portcullis_flow_/.test(setCookie) && flowAttrs.test(setCookie), setCookie);
  }

  // The jar: an HttpOnly session cookie that page scripts cannot read.
  const jar = await alice.context.cookies(proxy.origin);
  const session = jar.find((c) => c.name.startsWith('portcullis_session_'));
  check(`${label}: the jar holds a portcullis_session_* cookie for ${proxyUrl.hostname}`, !!session, jar.map((c) => c.name));
  if (session) {
    check(`${label}: the session cookie is HttpOnly`, session.httpOnly === true, session);
    check(`${label}: the session cookie is SameSite=Lax`, session.sameSite === 'Lax', session);
  }
  const visible = await alice.page.evaluate(() => document.cookie);
  check(`${label}: page scripts cannot see the session cookie`, !visible.includes('portcullis_session_'), visible);
  check(`${label}: the flow cookie is gone`, !jar.some((c) => c.name.startsWith('portcullis_flow_')), jar.map((c) => c.name));

  // A reload: the session cookie, and no second trip to the provider.
  const trips = alice.toProvider();
  const again = await alice.page.reload({ waitUntil: 'load', timeout: STEP_TIMEOUT });
  check(`${label}: a reload is served (200)`, again?.status() === 200, again?.status());
  check(`${label}: a reload makes no second trip to the provider`, alice.toProvider() === trips, alice.toProvider() - trips);
  const echoed2 = await echoOf(alice.page);
  check(`${label}: the reload is still alice`, echoed2.headers?.['x-email'] === 'alice@contoso.test', echoed2);
  await alice.context.close();
}

/** Bob signs in at his own tenant, but is not on the list. */
async function bobIsDenied(label, idpBase, origin, echo, user = 'bob@fabrikam.test') {
  const bob = await userContext(idpBase, user);
  const upstreamBefore = echo.seen.length;
  const res = await visit(bob, origin, `${origin}/private?x=1`);
  check(`${label}: bob gets 403`, res.status() === 403, `${res.status()} at ${res.url()}`);
  check(`${label}: bob went through the provider`, bob.toProvider() > 0, bob.toProvider());
  check(`${label}: the upstream never saw bob`, echo.seen.length === upstreamBefore, echo.seen.slice(upstreamBefore));
  await bob.context.close();
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

async function main() {
  if (!fs.existsSync(BIN)) throw new Error(`no portcullis binary at ${BIN} (cargo build, or set PORTCULLIS_BIN)`);
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-browser-'));

  const idp = await startIdp();
  const echo = await startEcho();
  // Playwright gives every launch a fresh, empty --user-data-dir of its own.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false, // --no-sandbox: this runs as root
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
  process.stdout.write(`# provider ${idp.base}, Chromium ${browser.version()}\n`);

  const scenarios = [
    ['1 alice, query', '127.0.0.1:0', '', async (p) => aliceSignsIn('1 alice, query', idp.base, p, echo, { formPost: false, crossSite: false })],
    ['2 bob', '127.0.0.1:0', '', async (p) => bobIsDenied('2 bob', idp.base, p.origin, echo)],
    ['3 alice, form_post', '127.0.0.1:0', FORM_POST, async (p) => aliceSignsIn('3 alice, form_post', idp.base, p, echo, { formPost: true, crossSite: false })],
    ['4 alice, form_post cross-site', '[::1]:0', FORM_POST, async (p) => aliceSignsIn('4 alice, form_post cross-site', idp.base, p, echo, { formPost: true, crossSite: true })],
  ];
  let proxy;
  for (const [name, listen, extra, run] of scenarios) {
    const policy = seedPolicy(idp.base, extra);
    if (!proxy || proxy.listen !== listen || proxy.policy !== policy) {
      if (proxy) await proxy.stop();
      proxy = await startProxy(policy, echo.port, listen);
      Object.assign(proxy, { listen, policy });
      process.stdout.write(`# ${name}: portcullis on ${proxy.origin}\n`);
    } else {
      process.stdout.write(`# ${name}: same portcullis\n`);
    }
    try {
      await run(proxy);
    } catch (e) {
      check(`${name}: runs to the end`, false, e.message);
      process.stdout.write(`# portcullis log (tail):\n${proxy.out.stderr.slice(-3000)}\n`);
    }
  }
  if (proxy) await proxy.stop();

  const label = '5 through nginx';
  const fa = await startForwardAuth(seedPolicy(idp.base));
  const origin = await startNginx(fa.addr, echo.port);
  process.stdout.write(`# ${label}: nginx on ${origin}, portcullis forward-auth on ${fa.addr}\n`);
  try {
    await throughNginx(label, idp.base, origin, echo);
  } catch (e) {
    check(`${label}: runs to the end`, false, e.message);
    process.stdout.write(`# portcullis log (tail):\n${fa.out.stderr.slice(-3000)}\n`);
  }

  const samlLabel = '6 saml';
  const samlBase = await startSamlIdp();
  const samlProxy = await startProxy(samlPolicy(samlBase), echo.port, '127.0.0.1:0');
  process.stdout.write(`# ${samlLabel}: IdP ${samlBase}, portcullis on ${samlProxy.origin}\n`);
  try {
    await samlSignIn(samlLabel, samlBase, samlProxy, echo);
  } catch (e) {
    check(`${samlLabel}: runs to the end`, false, e.message);
    process.stdout.write(`# portcullis log (tail):\n${samlProxy.out.stderr.slice(-3000)}\n`);
  }
  await samlProxy.stop();
}

let code = 0;
try {
  await main();
} catch (e) {
  check('setup', false, e.stack || e.message);
}
await cleanup();
const secs = ((Date.now() - started) / 1000).toFixed(1);
process.stdout.write(`# ${secs} s\nbrowser: ${passed} passed, ${failed} failed\n`);
if (failed > 0 || passed === 0) code = 1;
clearTimeout(watchdog);
process.exit(code);
