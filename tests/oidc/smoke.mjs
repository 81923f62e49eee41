#!/usr/bin/env node
// Smoke test for the Entra-shaped test identity provider (entra.mjs).
// No dependencies beyond Node's own (global fetch, node:crypto).
//
//   node tests/oidc/smoke.mjs        # exits 0 when every check passes
//
// Starts entra.mjs on an ephemeral loopback port, drives sign-ins without a browser
// (redirects followed by hand, user picked by login_hint), and checks the Entra shape.

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const started = Date.now();

const CLIENT_ID = '11111111-2222-4333-8444-555555555555';
const CLIENT_SECRET = 'p0rtcullis~Test.secret_value-1';
const CLIENT2_ID = '66666666-7777-4888-9999-000000000000';
const CLIENT2_SECRET = 'second~App.secret_value-2';
const CONSUMERS = '9188040d-6c67-4c5b-b112-36a304b66dad';
// The callback is never contacted: the flow stops when the provider redirects there.
// Any port works: clients are native apps, so loopback ports are not compared.
const REDIRECT_URI = 'http://127.0.0.1:9/callback';
const POST_LOGOUT = 'http://127.0.0.1:9/logged-out';

let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  if (ok) {
    passed += 1;
    process.stdout.write(`ok   - ${name}\n`);
  } else {
    failed += 1;
    process.stdout.write(`FAIL - ${name}${detail === undefined ? '' : `: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`}\n`);
  }
  return ok;
}

// ---------------------------------------------------------------------------------
// Start the provider
// ---------------------------------------------------------------------------------

const child = spawn(process.execPath, [path.join(here, 'entra.mjs'), '--port', '0'], {
  stdio: ['pipe', 'pipe', 'pipe'],
});
let stderr = '';
child.stderr.on('data', (d) => { stderr += d; });
const killTimer = setTimeout(() => {
  process.stdout.write('FAIL - smoke test timed out after 60 s\n');
  child.kill('SIGKILL');
  process.exit(1);
}, 60_000);

const ready = await new Promise((resolve, reject) => {
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    const i = buf.indexOf('\n');
    if (i !== -1) {
      try { resolve(JSON.parse(buf.slice(0, i))); } catch (e) { reject(e); }
    }
  });
  child.on('exit', (code) => reject(new Error(`entra.mjs exited early (${code}): ${stderr}`)));
});
const { base, tenants } = ready;
const CONTOSO = tenants.contoso;
const FABRIKAM = tenants.fabrikam;
check('ready line', ready.ready === true && /^http:\/\/127\.0\.0\.1:\d+$/.test(base) && tenants.consumers === CONSUMERS, ready);

// ---------------------------------------------------------------------------------
// Helpers: a cookie-keeping "browser", PKCE, JWT
// ---------------------------------------------------------------------------------

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
      const res = await fetch(next, { method, body, headers, redirect: 'manual' });
      this.store(res, next);
      if (res.status >= 300 && res.status < 400) {
        const loc = new URL(res.headers.get('location'), next);
        if (loc.origin !== base) return { kind: 'redirect', url: loc, params: new URLSearchParams(loc.search || loc.hash.slice(1)) };
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
        if (new URL(action).origin !== base) return { kind: 'form_post', url: new URL(action), params, status: res.status };
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
  return { status: res.status, headers: res.headers, body: await res.json().catch(() => undefined) };
}

function authorizeUrl(authority, extra) {
  const u = new URL(`${base}/${authority}/oauth2/v2.0/authorize`);
  const p = {
    client_id: CLIENT_ID, response_type: 'code', redirect_uri: REDIRECT_URI,
    scope: 'openid profile email offline_access User.Read', ...extra,
  };
  for (const [k, v] of Object.entries(p)) if (v !== undefined) u.searchParams.set(k, v);
  return u;
}
async function signIn(browser, authority, loginHint, extra = {}) {
  const { verifier, challenge } = pkce();
  const state = b64u(crypto.randomBytes(12));
  const nonce = b64u(crypto.randomBytes(12));
  const out = await browser.go(authorizeUrl(authority, {
    login_hint: loginHint, state, nonce, code_challenge: challenge, code_challenge_method: 'S256', ...extra,
  }));
  return { out, verifier, state, nonce };
}
async function redeem(authority, code, verifier, { basic = false, clientId = CLIENT_ID, secret = CLIENT_SECRET } = {}) {
  const form = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI });
  if (verifier) form.set('code_verifier', verifier);
  const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  if (basic) headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
  else { form.set('client_id', clientId); form.set('client_secret', secret); }
  return getJson(`${base}/${authority}/oauth2/v2.0/token`, { method: 'POST', headers, body: form });
}

// Microsoft's multi-tenant rule (spec §1.2): iss == template(tid) and key issuer(tid) == iss.
function entraIssuerOk(templateIssuer, jwk, claims) {
  const guid = /^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$/;
  return guid.test(claims.tid)
    && templateIssuer.replace('{tenantid}', claims.tid) === claims.iss
    && (jwk.issuer === undefined || jwk.issuer.replace('{tenantid}', claims.tid) === claims.iss);
}

try {
  // -------------------------------------------------------------------------------
  // Discovery and JWKS
  // -------------------------------------------------------------------------------
  const common = await getJson(`${base}/common/v2.0/.well-known/openid-configuration`);
  check('/common discovery: issuer template contains {tenantid}', common.status === 200 && common.body.issuer === `${base}/{tenantid}/v2.0`, common.body?.issuer);
  check('/common discovery: Entra endpoints, no code_challenge_methods_supported',
    common.body.authorization_endpoint === `${base}/common/oauth2/v2.0/authorize`
    && common.body.token_endpoint === `${base}/common/oauth2/v2.0/token`
    && common.body.jwks_uri === `${base}/common/discovery/v2.0/keys`
    && common.body.response_modes_supported.includes('form_post')
    && !('code_challenge_methods_supported' in common.body), common.body);
  check('/common discovery: Cache-Control max-age=86400, private', common.headers.get('cache-control') === 'max-age=86400, private');
  const orgs = await getJson(`${base}/organizations/v2.0/.well-known/openid-configuration`);
  check('/organizations discovery: template issuer', orgs.body?.issuer === `${base}/{tenantid}/v2.0`);
  const contosoDisc = await getJson(`${base}/${CONTOSO}/v2.0/.well-known/openid-configuration`);
  check('tenant discovery: concrete issuer', contosoDisc.body?.issuer === `${base}/${CONTOSO}/v2.0`, contosoDisc.body?.issuer);
  const domainDisc = await getJson(`${base}/contoso.test/v2.0/.well-known/openid-configuration`);
  check('domain authority discovery: GUID issuer', domainDisc.body?.issuer === `${base}/${CONTOSO}/v2.0`, domainDisc.body?.issuer);
  const consumersDisc = await getJson(`${base}/consumers/v2.0/.well-known/openid-configuration`);
  check('/consumers discovery: concrete 9188040d issuer', consumersDisc.body?.issuer === `${base}/${CONSUMERS}/v2.0`, consumersDisc.body?.issuer);
  const unknown = await getJson(`${base}/nosuch.test/v2.0/.well-known/openid-configuration`);
  check('unknown tenant: 400 AADSTS90002', unknown.status === 400 && unknown.body?.error_codes?.[0] === 90002 && /^AADSTS90002:/.test(unknown.body.error_description), unknown.body);

  const commonJwks = (await getJson(common.body.jwks_uri)).body;
  check('/common JWKS: every key has templated issuer, kid, x5t, no alg',
    commonJwks.keys.length >= 1 && commonJwks.keys.every((k) => k.issuer === `${base}/{tenantid}/v2.0` && k.kid && k.x5t && k.kty === 'RSA' && !('alg' in k) && !('d' in k)), commonJwks);
  const contosoJwks = (await getJson(contosoDisc.body.jwks_uri)).body;
  check('tenant JWKS: concrete key issuer', contosoJwks.keys.every((k) => k.issuer === `${base}/${CONTOSO}/v2.0`));

  // -------------------------------------------------------------------------------
  // alice: /common, code + PKCE S256 + nonce + form_post, non-interactive by login_hint
  // -------------------------------------------------------------------------------
  const alice = new Browser();
  const a = await signIn(alice, 'common', 'alice@contoso.test', { response_mode: 'form_post' });
  check('alice: form_post callback with code and state', a.out.kind === 'form_post' && a.out.url.href === REDIRECT_URI && a.out.params.get('code') && a.out.params.get('state') === a.state, a.out);
  check('alice: no RFC 9207 iss in the authorization response (Entra sends none)', a.out.params && !a.out.params.has('iss'));
  const aTok = await redeem('common', a.out.params.get('code'), a.verifier);
  check('alice: code redeemed at /common token endpoint', aTok.status === 200 && aTok.body.id_token && aTok.body.access_token && aTok.body.refresh_token && aTok.body.token_type === 'Bearer', aTok.body);
  const aId = decodeJwt(aTok.body.id_token);
  const aSig = verifyJwt(aTok.body.id_token, commonJwks);
  check('alice: ID token RS256 signature verifies with /common JWKS (header has kid)', aSig.ok && aId.header.kid, aId.header);
  const c = aId.payload;
  if (process.env.SMOKE_DUMP) console.log(JSON.stringify({ header: aId.header, payload: c, token: { ...aTok.body, id_token: '…', access_token: '…', refresh_token: '…' } }, null, 1));
  check('alice: iss is the contoso tenant issuer', c.iss === `${base}/${CONTOSO}/v2.0`, c.iss);
  check('alice: iss/tid/key-issuer pass the Entra multi-tenant rule', entraIssuerOk(common.body.issuer, aSig.jwk, c));
  check('alice: tid, oid, ver, nbf <= iat < exp', c.tid === CONTOSO && c.oid === 'a11ce000-0000-4000-8000-000000000001' && c.ver === '2.0'
    && Number.isInteger(c.nbf) && c.nbf <= c.iat && c.iat < c.exp, c);
  check('alice: aud is client_id, nonce echoed', c.aud === CLIENT_ID && c.nonce === a.nonce, c);
  check('alice: sub is pairwise (not the oid, 43 chars)', c.sub !== c.oid && /^[A-Za-z0-9_-]{43}$/.test(c.sub), c.sub);
  check('alice: groups, roles, xms_edov, email, preferred_username',
    JSON.stringify(c.groups) === '["g-admins"]' && JSON.stringify(c.roles) === '["Admin"]' && c.xms_edov === true
    && c.email === 'alice@contoso.test' && c.preferred_username === 'alice@contoso.test' && !('email_verified' in c), c);
  check('alice: token response has ext_expires_in', typeof aTok.body.ext_expires_in === 'number');

  // refresh grant
  const rForm = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: aTok.body.refresh_token, client_id: CLIENT_ID, client_secret: CLIENT_SECRET });
  const refreshed = await getJson(`${base}/common/oauth2/v2.0/token`, { method: 'POST', body: rForm, headers: { accept: 'application/json' } });
  check('alice: refresh_token grant at /common returns new tokens', refreshed.status === 200 && refreshed.body.access_token && refreshed.body.id_token && decodeJwt(refreshed.body.id_token).payload.oid === c.oid, refreshed.body);

  // userinfo (Graph-hosted in Entra)
  const ui = await getJson(`${base}/graph/oidc/userinfo`, { headers: { authorization: `Bearer ${aTok.body.access_token}` } });
  check('alice: userinfo stand-in returns sub', ui.status === 200 && ui.body.sub === c.sub, ui);

  // SSO: prompt=none with the existing session
  const silent = await signIn(alice, CONTOSO, undefined, { prompt: 'none' });
  check('alice: prompt=none with a session returns a code', silent.out.kind === 'redirect' && silent.out.params.get('code'), silent.out);

  // a second app gets a different pairwise sub
  const a2 = await signIn(new Browser(), CONTOSO, 'alice@contoso.test', { client_id: CLIENT2_ID });
  const a2Tok = await redeem(CONTOSO, a2.out.params.get('code'), a2.verifier, { clientId: CLIENT2_ID, secret: CLIENT2_SECRET, basic: true });
  const a2c = decodeJwt(a2Tok.body.id_token).payload;
  check('alice: second app (client_secret_basic) sees same oid, different sub', a2c.oid === c.oid && a2c.sub !== c.sub, a2c);

  // -------------------------------------------------------------------------------
  // Error shapes
  // -------------------------------------------------------------------------------
  const reuse = await redeem('common', a.out.params.get('code'), a.verifier);
  check('code reuse: invalid_grant AADSTS54005', reuse.status === 400 && reuse.body.error === 'invalid_grant' && reuse.body.error_codes?.[0] === 54005, reuse.body);
  const p1 = await signIn(new Browser(), CONTOSO, 'alice@contoso.test');
  const badPkce = await redeem(CONTOSO, p1.out.params.get('code'), pkce().verifier);
  check('wrong code_verifier: invalid_grant AADSTS501481', badPkce.body?.error === 'invalid_grant' && badPkce.body.error_codes?.[0] === 501481, badPkce.body);
  const p2 = await signIn(new Browser(), CONTOSO, 'alice@contoso.test');
  const badSecret = await redeem(CONTOSO, p2.out.params.get('code'), p2.verifier, { secret: 'wrong' });
  check('bad client secret: 401 invalid_client AADSTS7000215 with trace/correlation ids',
    badSecret.status === 401 && badSecret.body.error === 'invalid_client' && badSecret.body.error_codes?.[0] === 7000215
    && badSecret.body.trace_id && badSecret.body.correlation_id && /Trace ID: /.test(badSecret.body.error_description), badSecret.body);
  const p3 = await signIn(new Browser(), CONTOSO, 'alice@contoso.test');
  const otherTenant = await redeem(FABRIKAM, p3.out.params.get('code'), p3.verifier);
  check('code redeemed at another tenant: AADSTS700005', otherTenant.body?.error === 'invalid_grant' && otherTenant.body.error_codes?.[0] === 700005, otherTenant.body);
  const wrongTenant = await signIn(new Browser(), CONTOSO, 'bob@fabrikam.test');
  check('bob at the contoso authority: access_denied AADSTS50020 on the redirect',
    wrongTenant.out.kind === 'redirect' && wrongTenant.out.params.get('error') === 'access_denied'
    && /^AADSTS50020:/.test(wrongTenant.out.params.get('error_description')) && wrongTenant.out.params.get('state') === wrongTenant.state, wrongTenant.out);
  const nobody = await signIn(new Browser(), CONTOSO, 'nobody@contoso.test');
  check('unknown user: access_denied AADSTS50034', nobody.out.params?.get('error') === 'access_denied' && /^AADSTS50034:/.test(nobody.out.params.get('error_description')), nobody.out);
  const noSession = await signIn(new Browser(), CONTOSO, undefined, { prompt: 'none' });
  check('prompt=none without a session: login_required AADSTS50058', noSession.out.params?.get('error') === 'login_required' && /^AADSTS50058:/.test(noSession.out.params.get('error_description')), noSession.out);
  const badRedirect = await new Browser().go(authorizeUrl(CONTOSO, { redirect_uri: 'http://127.0.0.1:9/elsewhere', login_hint: 'alice@contoso.test' }));
  check('unregistered redirect_uri: error page with AADSTS50011, no callback', badRedirect.kind === 'page' && badRedirect.status === 400 && /AADSTS50011/.test(badRedirect.text), badRedirect);

  // account switch in one browser: login_hint names another user than the session's
  const sw = new Browser();
  await signIn(sw, CONTOSO, 'alice@contoso.test');
  const swNone = await signIn(sw, CONTOSO, 'carol@contoso.test', { prompt: 'none' });
  check('account switch with prompt=none: error, no code', swNone.out.params?.get('error') && !swNone.out.params.get('code'), swNone.out);
  const swTo = await signIn(sw, CONTOSO, 'carol@contoso.test');
  const swTok = swTo.out.params?.get('code') ? await redeem(CONTOSO, swTo.out.params.get('code'), swTo.verifier) : { body: {} };
  check('account switch: login_hint=carol in alice\'s browser signs carol in (redirects only)', swTok.body.id_token && decodeJwt(swTok.body.id_token).payload.preferred_username === 'carol@contoso.test', swTo.out);
  const reauth = await signIn(sw, CONTOSO, undefined, { prompt: 'login' });
  check('prompt=login without login_hint re-authenticates the session user', reauth.out.params?.get('code'), reauth.out);
  const pick = await signIn(sw, 'common', undefined, { prompt: 'select_account' });
  check('/common prompt=select_account without login_hint picks the session account', pick.out.params?.get('code'), pick.out);
  const sel = await signIn(new Browser(), 'common', 'alice@contoso.test', { prompt: 'select_account' });
  check('prompt=select_account with login_hint: signs in without UI', sel.out.params?.get('code'), sel.out);
  const dom = await signIn(new Browser(), 'contoso.test', 'alice@contoso.test');
  const domTok = await redeem('contoso.test', dom.out.params.get('code'), dom.verifier);
  check('domain authority (contoso.test): sign-in and GUID iss', decodeJwt(domTok.body.id_token ?? 'x.e30.x').payload.iss === `${base}/${CONTOSO}/v2.0`, domTok.body);
  const noHint = await signIn(new Browser(), 'common', undefined);
  check('/common without login_hint or session: login_required AADSTS50058', noHint.out.params?.get('error') === 'login_required' && /^AADSTS50058:/.test(noHint.out.params.get('error_description')), noHint.out);
  const unknownClient = await new Browser().go(authorizeUrl(CONTOSO, { client_id: '99999999-9999-4999-8999-999999999999', login_hint: 'alice@contoso.test' }));
  check('unknown client_id: error page AADSTS700016', unknownClient.kind === 'page' && /AADSTS700016/.test(unknownClient.text), unknownClient);

  // -------------------------------------------------------------------------------
  // bob (fabrikam via /organizations), dave (consumers via /common), mallory (nOAuth)
  // -------------------------------------------------------------------------------
  const bob = await signIn(new Browser(), 'organizations', 'bob@fabrikam.test');
  const bobTok = await redeem('organizations', bob.out.params.get('code'), bob.verifier);
  const bc = decodeJwt(bobTok.body.id_token).payload;
  check('bob: /organizations sign-in lands in fabrikam', bc.iss === `${base}/${FABRIKAM}/v2.0` && bc.tid === FABRIKAM && !('xms_edov' in bc), bc);
  const daveOrg = await signIn(new Browser(), 'organizations', 'dave@outlook.test');
  check('dave at /organizations: access_denied AADSTS50020', daveOrg.out.params?.get('error') === 'access_denied' && /^AADSTS50020:/.test(daveOrg.out.params.get('error_description')), daveOrg.out);
  const dave = await signIn(new Browser(), 'common', 'dave@outlook.test');
  const daveTok = await redeem('common', dave.out.params.get('code'), dave.verifier);
  const dc = decodeJwt(daveTok.body.id_token).payload;
  check('dave: personal account via /common has tid 9188040d and concrete issuer', dc.tid === CONSUMERS && dc.iss === `${base}/${CONSUMERS}/v2.0`, dc);
  const mal = await signIn(new Browser(), CONTOSO, 'mallory@contoso.test');
  const malTok = await redeem(CONTOSO, mal.out.params.get('code'), mal.verifier);
  const mc = decodeJwt(malTok.body.id_token).payload;
  check('mallory: email claims alice, xms_edov false, own oid (nOAuth fixture)', mc.email === 'alice@contoso.test' && mc.xms_edov === false && mc.oid !== c.oid && mc.preferred_username === 'mallory@contoso.test', mc);

  // -------------------------------------------------------------------------------
  // carol: groups overage + Graph stand-in paging
  // -------------------------------------------------------------------------------
  const carol = await signIn(new Browser(), CONTOSO, 'carol@contoso.test');
  const carolTok = await redeem(CONTOSO, carol.out.params.get('code'), carol.verifier, { basic: true });
  const cc = decodeJwt(carolTok.body.id_token).payload;
  check('carol: overage -> no groups, _claim_names.groups + _claim_sources endpoint',
    !('groups' in cc) && cc._claim_names?.groups === 'src1' && cc._claim_sources?.src1?.endpoint === `${base}/graph/v1.0/users/${cc.oid}/getMemberObjects`, cc);
  const ids = [];
  let pages = 0;
  let next = `${base}/graph/v1.0/me/transitiveMemberOf?$select=id&$top=100`;
  while (next && pages < 10) {
    const page = await getJson(next, { headers: { authorization: `Bearer ${carolTok.body.access_token}`, consistencylevel: 'eventual' } });
    if (page.status !== 200) { check('carol: Graph page', false, page); break; }
    pages += 1;
    ids.push(...page.body.value.map((g) => g.id));
    next = page.body['@odata.nextLink'];
  }
  check('carol: transitiveMemberOf pages 250 groups in 3 pages via @odata.nextLink', ids.length === 250 && new Set(ids).size === 250 && pages === 3 && ids.includes('g-admins'), { n: ids.length, pages });
  const gmo = await getJson(`${base}/graph/v1.0/me/getMemberObjects`, {
    method: 'POST', headers: { authorization: `Bearer ${carolTok.body.access_token}`, 'content-type': 'application/json' }, body: JSON.stringify({ securityEnabledOnly: true }),
  });
  check('carol: POST /me/getMemberObjects returns 250 ids', gmo.status === 200 && gmo.body.value.length === 250, gmo.status);
  const gmo2 = await getJson(cc._claim_sources.src1.endpoint, {
    method: 'POST', headers: { authorization: `Bearer ${carolTok.body.access_token}`, 'content-type': 'application/json' }, body: '{"securityEnabledOnly":false}',
  });
  check('carol: POST _claim_sources endpoint (users/{oid}/getMemberObjects) returns 250 ids', gmo2.status === 200 && gmo2.body.value.length === 250, gmo2.status);
  const hybrid = await signIn(new Browser(), CONTOSO, 'carol@contoso.test', { response_type: 'code id_token' });
  const hc = hybrid.out.params?.get('id_token') ? decodeJwt(hybrid.out.params.get('id_token')).payload : {};
  check('carol: ID token from the authorization endpoint (hybrid) carries hasgroups instead of groups', hybrid.out.url?.hash && hc.hasgroups === true && !('groups' in hc) && hc.nonce === hybrid.nonce, hc);
  const noTok = await getJson(`${base}/graph/v1.0/me/transitiveMemberOf`);
  const badTok = await getJson(`${base}/graph/v1.0/me/transitiveMemberOf`, { headers: { authorization: 'Bearer nope' } });
  check('Graph stand-in: 401 without / with an unknown access token', noTok.status === 401 && badTok.status === 401 && noTok.body.error.code === 'InvalidAuthenticationToken');
  const otherUser = await getJson(`${base}/graph/v1.0/users/${c.oid}/getMemberObjects`, {
    method: 'POST', headers: { authorization: `Bearer ${carolTok.body.access_token}` }, body: '{}',
  });
  check('Graph stand-in: another user\'s groups are forbidden', otherUser.status === 403);

  // -------------------------------------------------------------------------------
  // Key rotation
  // -------------------------------------------------------------------------------
  const oldKid = aId.header.kid;
  const rot = await getJson(`${base}/_admin/rotate-keys`, { method: 'POST' });
  const jwks2 = (await getJson(`${base}/common/discovery/v2.0/keys`)).body;
  const kids2 = jwks2.keys.map((k) => k.kid);
  check('rotate-keys: new kid published alongside the old one', rot.status === 200 && rot.body.signing_kid !== oldKid && kids2.includes(rot.body.signing_kid) && kids2.includes(oldKid), { rot: rot.body, kids2 });
  const r1 = await signIn(new Browser(), 'common', 'alice@contoso.test');
  const r1Tok = await redeem('common', r1.out.params.get('code'), r1.verifier);
  const r1Id = decodeJwt(r1Tok.body.id_token);
  check('rotate-keys: new ID tokens are signed with the new kid', r1Id.header.kid === rot.body.signing_kid && !commonJwks.keys.some((k) => k.kid === r1Id.header.kid) && verifyJwt(r1Tok.body.id_token, jwks2).ok, r1Id.header);
  const rot2 = await getJson(`${base}/_admin/rotate-keys?drop=1`, { method: 'POST' });
  const kids3 = (await getJson(`${base}/common/discovery/v2.0/keys`)).body.keys.map((k) => k.kid);
  check('rotate-keys?drop=1: only the newest key remains', kids3.length === 1 && kids3[0] === rot2.body.signing_kid && !kids3.includes(oldKid), kids3);
  // sessions survive a rotation (provider state is kept)
  const afterRot = await signIn(alice, CONTOSO, undefined, { prompt: 'none' });
  check('rotate-keys: existing session still gives prompt=none SSO', afterRot.out.params?.get('code'), afterRot.out);
  const afterRotTok = await redeem(CONTOSO, afterRot.out.params.get('code'), afterRot.verifier);
  check('rotate-keys: token after drop signed with the surviving key', decodeJwt(afterRotTok.body.id_token).header.kid === rot2.body.signing_kid);

  // -------------------------------------------------------------------------------
  // RP-initiated logout
  // -------------------------------------------------------------------------------
  const out = await alice.go(`${base}/common/oauth2/v2.0/logout?${new URLSearchParams({ id_token_hint: afterRotTok.body.id_token, post_logout_redirect_uri: POST_LOGOUT, state: 'bye' })}`);
  check('logout: redirected to post_logout_redirect_uri with state, no confirmation page', out.kind === 'redirect' && out.url.pathname === '/logged-out' && out.params.get('state') === 'bye', out);
  const afterLogout = await signIn(alice, CONTOSO, undefined, { prompt: 'none' });
  check('logout: prompt=none afterwards gives login_required', afterLogout.out.params?.get('error') === 'login_required', afterLogout.out);
  // The provider exits when its stdin (a pipe from the test) closes.
  const exited = new Promise((resolve) => { child.once('exit', () => resolve(true)); setTimeout(() => resolve(false), 5000); });
  child.stdin.end();
  check('provider exits when stdin closes', await exited);
} catch (err) {
  check('no exception', false, err?.stack ?? String(err));
} finally {
  clearTimeout(killTimer);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
}

const secs = ((Date.now() - started) / 1000).toFixed(2);
if (failed) process.stdout.write(`--- entra.mjs stderr ---\n${stderr}\n`);
process.stdout.write(`elapsed: ${secs} s\n`);
process.stdout.write(`smoke: ${passed} passed, ${failed} failed\n`);
process.exit(failed ? 1 : 0);
