#!/usr/bin/env node
// Entra ID-shaped OpenID Provider for loopback integration tests.
//
// The protocol engine is `oidc-provider` (panva, OpenID Certified), one Provider per
// tenant. This file is only the front that makes it look like Microsoft Entra ID:
// Entra paths, /common and /organizations with the `{tenantid}` issuer template,
// per-key `issuer` in the JWKS, Entra claims, groups overage, AADSTS-shaped errors,
// a Graph stand-in, key rotation and non-interactive sign-in by `login_hint`.
// See README.md in this directory. Usage:
//
//   node tests/oidc/entra.mjs --port 0 [--config FILE] [--redirect-uri URL]...
//        [--post-logout-redirect-uri URL]... [--stdin-exit auto|on|off]
//
// Prints one JSON line on stdout when ready, then serves until killed, until stdin
// closes (when stdin is a pipe), or until its parent process goes away.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as querystring from 'node:querystring';

import Provider, { interactionPolicy } from 'oidc-provider';

const { Prompt, Check, base: basePolicy } = interactionPolicy;

// ---------------------------------------------------------------------------------
// Command line and configuration
// ---------------------------------------------------------------------------------

const argv = process.argv.slice(2);
const opts = { port: 0, host: '127.0.0.1', config: undefined, redirectUris: [], postLogoutUris: [], stdinExit: 'auto' };
for (let i = 0; i < argv.length; i += 1) {
  const a = argv[i];
  const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
  const value = () => (inline !== undefined ? inline : argv[++i]);
  switch (flag) {
    case '--port': opts.port = Number(value()); break;
    case '--config': opts.config = value(); break;
    case '--redirect-uri': opts.redirectUris.push(value()); break;
    case '--post-logout-redirect-uri': opts.postLogoutUris.push(value()); break;
    case '--stdin-exit': opts.stdinExit = value(); break;
    case '--help': case '-h':
      process.stdout.write('usage: node entra.mjs --port 0 [--config FILE] [--redirect-uri URL]... '
        + '[--post-logout-redirect-uri URL]... [--stdin-exit auto|on|off]\n');
      process.exit(0);
      break;
    default:
      process.stderr.write(`entra.mjs: unknown argument ${a}\n`);
      process.exit(2);
  }
}
if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
  process.stderr.write('entra.mjs: --port must be 0..65535\n');
  process.exit(2);
}

function loadConfig() {
  const src = opts.config ?? process.env.ENTRA_TEST_IDP_CONFIG;
  if (!src) return {};
  const text = src.trim().startsWith('{') ? src : fs.readFileSync(src, 'utf8');
  return JSON.parse(text);
}
const config = loadConfig();

const CONSUMERS_TID = '9188040d-6c67-4c5b-b112-36a304b66dad';
const TENANTS = [
  { name: 'contoso', id: 'c0a705a0-0000-4000-8000-000000000001', domains: ['contoso.test', 'contoso.onmicrosoft.com'] },
  { name: 'fabrikam', id: 'fab71ca0-0000-4000-8000-000000000002', domains: ['fabrikam.test', 'fabrikam.onmicrosoft.com'] },
  { name: 'consumers', id: CONSUMERS_TID, domains: ['outlook.test'] },
  // More tenants from the config: `{ name, id, domains }` (the SAML test IdP's, say).
  ...(config.tenants ?? []),
];
const tenantByName = new Map(TENANTS.map((t) => [t.name, t]));
const tenantById = new Map(TENANTS.map((t) => [t.id, t]));
const tenantByDomain = new Map(TENANTS.flatMap((t) => t.domains.map((d) => [d, t])));
const resolveTenantRef = (ref) => tenantByName.get(ref) ?? tenantById.get(String(ref).toLowerCase());

// Clients. Loopback redirect URIs are registered without a port: clients are
// `application_type: native`, so oidc-provider matches any port on 127.0.0.1 / [::1]
// (RFC 8252 §7.3); the path must match exactly.
const DEFAULT_CLIENTS = [
  {
    client_id: '11111111-2222-4333-8444-555555555555',
    client_secret: 'p0rtcullis~Test.secret_value-1',
    redirect_uris: ['http://127.0.0.1/callback'],
    post_logout_redirect_uris: ['http://127.0.0.1/', 'http://127.0.0.1/logged-out'],
  },
  {
    // A second app registration: same users get a different pairwise `sub`.
    client_id: '66666666-7777-4888-9999-000000000000',
    client_secret: 'second~App.secret_value-2',
    redirect_uris: ['http://127.0.0.1/callback'],
    post_logout_redirect_uris: ['http://127.0.0.1/'],
  },
];
const clientSpecs = (config.clients ?? DEFAULT_CLIENTS).map((c) => {
  const spec = { ...c };
  spec.redirect_uris = [...new Set([...(c.redirect_uris ?? []), ...opts.redirectUris])];
  spec.post_logout_redirect_uris = [...new Set([...(c.post_logout_redirect_uris ?? []), ...opts.postLogoutUris])];
  spec.tenants = c.tenants ? c.tenants.map((r) => {
    const t = resolveTenantRef(r);
    if (!t) throw new Error(`client ${c.client_id}: unknown tenant ${r}`);
    return t.id;
  }) : undefined;
  return spec;
});

// Users. `login_hint` is matched against `upn` (== preferred_username), never email.
function guidFrom(prefix, n) {
  return `${prefix}-0000-4000-8000-${String(n).padStart(12, '0')}`;
}
const GROUPS = new Map([['g-admins', 'g-admins'], ['g-fabrikam-users', 'g-fabrikam-users']]);
const carolGroups = ['g-admins'];
for (let n = 1; carolGroups.length < 250; n += 1) {
  const id = guidFrom('6a0c0000', n);
  GROUPS.set(id, `carol-group-${String(n).padStart(3, '0')}`);
  carolGroups.push(id);
}
const DEFAULT_USERS = [
  { upn: 'alice@contoso.test', oid: guidFrom('a11ce000', 1), tenant: 'contoso', name: 'Alice Adams', given_name: 'Alice', family_name: 'Adams', email: 'alice@contoso.test', xms_edov: true, groups: ['g-admins'], roles: ['Admin'] },
  { upn: 'bob@fabrikam.test', oid: guidFrom('b0b00000', 2), tenant: 'fabrikam', name: 'Bob Brown', given_name: 'Bob', family_name: 'Brown', email: 'bob@fabrikam.test', groups: ['g-fabrikam-users'], roles: [] },
  { upn: 'carol@contoso.test', oid: guidFrom('ca201000', 3), tenant: 'contoso', name: 'Carol Clark', given_name: 'Carol', family_name: 'Clark', email: 'carol@contoso.test', xms_edov: true, groups: carolGroups, roles: ['Reader'] },
  // nOAuth: email claim names alice, but the email domain owner is not verified.
  { upn: 'mallory@contoso.test', oid: guidFrom('3a110000', 4), tenant: 'contoso', name: 'Mallory Moss', given_name: 'Mallory', family_name: 'Moss', email: 'alice@contoso.test', xms_edov: false, groups: [], roles: [] },
  // Personal Microsoft account (consumers tenant); MSA object IDs start with 00000000-0000-0000-.
  { upn: 'dave@outlook.test', oid: '00000000-0000-0000-da7e-000000000005', tenant: 'consumers', name: 'Dave Davis', given_name: 'Dave', family_name: 'Davis', email: 'dave@outlook.test', groups: [], roles: [] },
];
const users = new Map(); // oid -> user
for (const raw of [...DEFAULT_USERS, ...(config.users ?? [])]) {
  const t = resolveTenantRef(raw.tenant ?? raw.tid);
  if (!t) throw new Error(`user ${raw.upn}: unknown tenant ${raw.tenant ?? raw.tid}`);
  let groups = raw.groups ?? [];
  if (Number.isInteger(raw.group_count)) {
    groups = [...groups];
    for (let n = 1; groups.length < raw.group_count; n += 1) groups.push(guidFrom(raw.oid.slice(0, 8), 1000 + n));
  }
  const u = { ...raw, upn: raw.upn.toLowerCase(), tid: t.id, tenant: t.name, groups, roles: raw.roles ?? [] };
  for (const [oid, existing] of users) if (existing.upn === u.upn) users.delete(oid);
  users.set(u.oid, u);
}
const findUserByLogin = (hint) => {
  if (!hint) return undefined;
  const h = String(hint).toLowerCase();
  for (const u of users.values()) if (u.upn === h || u.oid === h) return u;
  return undefined;
};

// ---------------------------------------------------------------------------------
// State: per-tenant stores (oidc-provider adapter), signing keys, providers
// ---------------------------------------------------------------------------------

class Store {
  map = new Map();

  get(key) {
    const e = this.map.get(key);
    if (!e) return undefined;
    if (e.exp && e.exp <= Date.now()) { this.map.delete(key); return undefined; }
    return e.v;
  }

  set(key, v, expiresIn) { this.map.set(key, { v, exp: expiresIn ? Date.now() + expiresIn * 1000 : 0 }); }

  delete(key) { this.map.delete(key); }

  sweep() { for (const k of this.map.keys()) this.get(k); }
}
const stores = new Map(TENANTS.map((t) => [t.id, new Store()]));
setInterval(() => stores.forEach((s) => s.sweep()), 60_000).unref();

function adapterFor(store) {
  return class TenantAdapter {
    constructor(name) { this.name = name; }

    key(id) { return `${this.name}:${id}`; }

    async upsert(id, payload, expiresIn) {
      store.set(this.key(id), structuredClone(payload), expiresIn);
      if (payload.grantId) {
        const gk = `grant:${payload.grantId}`;
        store.set(gk, [...(store.get(gk) ?? []), this.key(id)]);
      }
      if (payload.uid) store.set(`sessionUid:${payload.uid}`, id, expiresIn);
      if (payload.userCode) store.set(`userCode:${payload.userCode}`, id, expiresIn);
    }

    async find(id) { const v = store.get(this.key(id)); return v && structuredClone(v); }

    async findByUid(uid) { const id = store.get(`sessionUid:${uid}`); return id ? this.find(id) : undefined; }

    async findByUserCode(code) { const id = store.get(`userCode:${code}`); return id ? this.find(id) : undefined; }

    async consume(id) { const v = store.get(this.key(id)); if (v) v.consumed = Math.floor(Date.now() / 1000); }

    async destroy(id) { store.delete(this.key(id)); }

    async revokeByGrantId(grantId) {
      const gk = `grant:${grantId}`;
      for (const k of store.get(gk) ?? []) store.delete(k);
      store.delete(gk);
    }
  };
}
const tenantOwning = (model, value) => TENANTS.find((t) => value && stores.get(t.id).get(`${model}:${value}`));

function newSigningKey() {
  // The key comes out of the generator as PEM and is read back into a key
  // object of its own before the JWK export. Exporting the generator's own
  // key object can deadlock node 20: the export holds the key's mutex while
  // it allocates, a garbage collection then destroys the finished
  // key-generation job, and the job's destructor waits for the same mutex
  // (seen as a provider that never printed its ready line).
  const { privateKey: pem } = crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const privateKey = crypto.createPrivateKey(pem);
  const kid = crypto.randomBytes(20).toString('base64url'); // looks like Entra's x5t-style kid
  return { kid, private: { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig' } };
}
let signingKeys = [newSigningKey()]; // first key signs
const cookieKeys = [crypto.randomBytes(32).toString('base64url')];

let base; // http://127.0.0.1:PORT, set once listening
const providers = new Map(); // tenant id -> { provider, callback }

// ---------------------------------------------------------------------------------
// AADSTS-shaped errors
// ---------------------------------------------------------------------------------

function aadFields(code, message) {
  const traceId = crypto.randomUUID();
  const correlationId = crypto.randomUUID();
  const timestamp = `${new Date().toISOString().slice(0, 19).replace('T', ' ')}Z`;
  return {
    description: `AADSTS${code}: ${message}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
    timestamp, traceId, correlationId,
  };
}
function aadErrorBody(error, code, message) {
  const f = aadFields(code, message);
  return {
    error, error_description: f.description, error_codes: [code], timestamp: f.timestamp,
    trace_id: f.traceId, correlation_id: f.correlationId, error_uri: `${base}/error?code=${code}`,
  };
}
const hasAadCode = (d) => typeof d === 'string' && /^AADSTS\d+:/.test(d);

const AUTHZ_CODES = {
  login_required: 50058, interaction_required: 50058, account_selection_required: 16000,
  consent_required: 65001, access_denied: 65004, invalid_request: 900144, invalid_scope: 70011,
  unsupported_response_type: 700054, unauthorized_client: 700016, invalid_client: 700016,
  invalid_redirect_uri: 50011, invalid_request_uri: 9002313, invalid_request_object: 9002313,
};
function authzDescription(error, description) {
  if (hasAadCode(description)) return description;
  return aadFields(AUTHZ_CODES[error] ?? 9002313, description ?? error).description;
}

function tokenErrorCode(body, err) {
  const detail = String(err?.error_detail ?? err?.cause?.message ?? body.error_description ?? body.error);
  switch (body.error) {
    case 'invalid_client':
      if (/not found/.test(detail)) return [700016, 'Application was not found in the directory. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.'];
      if (/expired/.test(detail)) return [7000222, 'The provided client secret keys are expired.'];
      if (/mechanism does not match/.test(detail)) return [7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."];
      return [7000215, 'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.'];
    case 'invalid_request':
      if (/no client authentication mechanism/.test(detail)) return [7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."];
      if (/missing required parameter/.test(detail)) return [900144, `The request body must contain the following parameter: ${detail.trim()}.`];
      return [9002313, `Invalid request. Request is malformed or invalid. (${detail.trim()})`];
    case 'invalid_grant':
      if (/code_verifier|PKCE/i.test(detail)) return [501481, 'The Code_Verifier does not match the code_challenge supplied in the authorization request.'];
      if (/already consumed/.test(detail)) return [54005, 'OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.'];
      if (/refresh token is expired/.test(detail)) return [700082, 'The refresh token has expired due to inactivity.'];
      if (/expired/.test(detail)) return [70008, 'The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.'];
      return [70000, `The provided grant is invalid or malformed. (${detail.trim()})`];
    case 'unsupported_grant_type': return [70003, 'The app requested an unsupported grant type.'];
    case 'invalid_scope': return [70011, 'The provided value for the input parameter \'scope\' is not valid.'];
    case 'unauthorized_client': return [700016, 'The client is not authorized to use this grant type.'];
    default: return [9002313, `Invalid request. (${detail.trim()})`];
  }
}

function errorPage(res, status, code, message, extra = {}) {
  const body = aadErrorBody(extra.error ?? 'invalid_request', code, message);
  const html = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign in to your account</title></head>
<body>
<h1>Sorry, but we're having trouble signing you in.</h1>
<p id="aadsts">${escapeHtml(`AADSTS${code}: ${message}`)}</p>
<pre id="error">${escapeHtml(JSON.stringify(body, null, 2))}</pre>
</body></html>`;
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}
function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

// ---------------------------------------------------------------------------------
// Providers (one per tenant, rebuilt on key rotation; state lives in the stores)
// ---------------------------------------------------------------------------------

function pairwiseSub(tid, oid, clientId) {
  // Entra's `sub` is pairwise per (user, app); 43 base64url chars like the real thing.
  return crypto.createHash('sha256').update(`${tid}|${oid}|${clientId}`).digest('base64url');
}

function claimsFor(user, use, ctx) {
  if (use === 'userinfo') {
    // Graph's /oidc/userinfo returns a small set (no oid/tid/groups).
    return {
      sub: user.oid, name: user.name, given_name: user.given_name, family_name: user.family_name,
      ...(user.email !== undefined ? { email: user.email } : {}),
    };
  }
  const c = {
    nbf: Math.floor(Date.now() / 1000), // Entra ID tokens carry nbf (= iat)
    sub: user.oid, oid: user.oid, tid: user.tid, ver: '2.0', name: user.name,
    preferred_username: user.upn, given_name: user.given_name, family_name: user.family_name,
  };
  if (user.email !== undefined) c.email = user.email;
  if (user.xms_edov !== undefined) c.xms_edov = user.xms_edov;
  if (user.roles.length) c.roles = user.roles;
  const route = ctx?.oidc?.route;
  const fromAuthorize = route === 'authorization' || route === 'resume';
  if (user.groups.length) {
    if (fromAuthorize && user.groups.length > 5) {
      c.hasgroups = true; // implicit/hybrid ID tokens: limit is 5
    } else if (user.groups.length > 200) {
      c._claim_names = { groups: 'src1' };
      c._claim_sources = { src1: { endpoint: `${base}/graph/v1.0/users/${user.oid}/getMemberObjects` } };
    } else {
      c.groups = user.groups;
    }
  }
  return c;
}

function buildPolicy() {
  const policy = basePolicy();
  policy.add(new Prompt({ name: 'select_account', requestable: true }), 0);
  // Clients are `native` only so that loopback redirect ports are not compared; Entra
  // does not force an interaction on every request from such apps, so neither do we.
  policy.get('consent').checks.remove('native_client_prompt');
  policy.get('login').checks.add(new Check(
    'login_hint_mismatch',
    'login_hint names a different user than the signed-in one',
    (ctx) => {
      const hint = ctx.oidc.params.login_hint;
      const acct = ctx.oidc.session.accountId;
      if (!hint || !acct) return Check.NO_NEED_TO_PROMPT;
      return findUserByLogin(hint)?.oid === acct ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT;
    },
  ));
  return policy;
}

function extractXsrf(html) {
  return /name="xsrf" value="([^"]+)"/.exec(html)?.[1];
}

function rewriteAuthorizationResponse(ctx) {
  // Entra-style errors on the redirect (AADSTS codes) and no RFC 9207 `iss` parameter.
  const location = ctx.response.get('Location');
  if (location && ctx.status >= 300 && ctx.status < 400) {
    let u;
    try { u = new URL(location); } catch { return; }
    if (u.origin === base) return; // internal hop (interaction / resume)
    for (const sp of [u.searchParams, new URLSearchParams(u.hash.slice(1))]) {
      const isHash = sp !== u.searchParams;
      if (!sp.has('code') && !sp.has('error') && !sp.has('id_token') && !sp.has('state')) continue;
      sp.delete('iss');
      if (sp.has('error')) sp.set('error_description', authzDescription(sp.get('error'), sp.get('error_description') ?? undefined));
      if (isHash) u.hash = sp.toString();
    }
    ctx.redirect(u.href);
    ctx.status = 303;
    return;
  }
  if (typeof ctx.body === 'string' && /action="[^"]*\/logout\/confirm"/.test(ctx.body) && extractXsrf(ctx.body)) {
    // Account switch (login_hint names another user than the session's): oidc-provider
    // ends the old session with an auto-submitting form; make it a plain redirect.
    const confirm = new URL(ctx.oidc.urlFor('end_session_confirm'));
    confirm.search = new URLSearchParams({ xsrf: extractXsrf(ctx.body), logout: 'yes' }).toString();
    ctx.status = 303;
    ctx.redirect(confirm.href);
    return;
  }
  if (typeof ctx.body === 'string' && ctx.body.includes('Submitting Callback')) {
    let html = ctx.body.replace(/<input type="hidden" name="iss" value="[^"]*"\/>\n?/, '');
    const err = /<input type="hidden" name="error" value="([^"]*)"\/>/.exec(html)?.[1];
    if (err) {
      const m = /<input type="hidden" name="error_description" value="([^"]*)"\/>/.exec(html);
      const desc = m ? m[1].replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&') : undefined;
      const input = `<input type="hidden" name="error_description" value="${escapeHtml(authzDescription(err, desc))}"/>`;
      html = m ? html.replace(m[0], input) : html.replace(/(<input type="hidden" name="error" value="[^"]*"\/>)/, `$1\n${input}`);
    }
    ctx.body = html;
  }
}

function buildProvider(t) {
  const issuer = `${base}/${t.id}/v2.0`;
  const clients = clientSpecs
    .filter((c) => !c.tenants || c.tenants.includes(t.id))
    .map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      redirect_uris: c.redirect_uris,
      post_logout_redirect_uris: c.post_logout_redirect_uris,
      application_type: c.application_type ?? 'native',
      token_endpoint_auth_method: c.token_endpoint_auth_method ?? 'client_secret_post',
      response_types: ['code', 'id_token', 'code id_token'],
      grant_types: ['authorization_code', 'refresh_token', 'implicit'],
      subject_type: 'pairwise',
      // Never fetched (validation is off); only here so oidc-provider accepts
      // pairwise clients whose redirect URIs span several hosts.
      sector_identifier_uri: `https://sector.invalid/${c.client_id}`,
    }));

  const provider = new Provider(issuer, {
    adapter: adapterFor(stores.get(t.id)),
    clients,
    jwks: { keys: signingKeys.map((k) => k.private) },
    cookies: {
      keys: cookieKeys,
      names: { session: `_session_${t.name}`, interaction: `_interaction_${t.name}`, resume: `_interaction_resume_${t.name}` },
    },
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    claims: {
      openid: ['sub', 'nbf', 'tid', 'ver', 'groups', 'hasgroups', 'roles'],
      profile: ['oid', 'name', 'preferred_username', 'given_name', 'family_name'],
      email: ['email', 'xms_edov'],
    },
    conformIdTokenClaims: false, // scope claims go into the ID token, as with Entra
    subjectTypes: ['pairwise'],
    pairwiseIdentifier: async (_ctx, accountId, client) => pairwiseSub(t.id, accountId, client.clientId),
    sectorIdentifierUriValidate: () => false,
    pkce: { required: () => false }, // honoured when sent (S256), not demanded
    responseTypes: ['code', 'id_token', 'code id_token', 'none'],
    extraParams: ['domain_hint'],
    clockTolerance: 5,
    ttl: { AccessToken: 3600, IdToken: 3600, AuthorizationCode: 600, RefreshToken: 14 * 24 * 3600, Interaction: 600, Session: 24 * 3600, Grant: 14 * 24 * 3600, ...(config.ttl ?? {}) },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        // No UI: the front turns the confirmation form into a redirect (see below).
        logoutSource: async (ctx, form) => { ctx.type = 'html'; ctx.body = form; },
        postLogoutSuccessSource: async (ctx) => { ctx.type = 'html'; ctx.body = '<!DOCTYPE html><title>Signed out</title><p>You signed out of your account.</p>'; },
      },
    },
    routes: {
      authorization: '/oauth2/v2.0/authorize',
      token: '/oauth2/v2.0/token',
      jwks: '/discovery/v2.0/keys',
      end_session: '/oauth2/v2.0/logout',
      userinfo: '/oidc/userinfo',
    },
    interactions: {
      url: (_ctx, interaction) => `/${t.id}/interaction/${interaction.uid}`,
      policy: buildPolicy(),
    },
    // Entra apps are consented tenant-wide: any OIDC scope asked for is granted,
    // also under prompt=none and after a grant was revoked (e.g. by code replay).
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      const { accountId } = oidc.session;
      const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
      let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
      if (!grant || grant.accountId !== accountId || grant.clientId !== oidc.client.clientId) {
        grant = new oidc.provider.Grant({ accountId, clientId: oidc.client.clientId });
      }
      if (oidc.params.scope) grant.addOIDCScope(oidc.params.scope);
      await grant.save();
      return grant;
    },
    async findAccount(ctx, id) {
      const user = users.get(id);
      if (!user || user.tid !== t.id) return undefined;
      return { accountId: id, claims: async (use) => claimsFor(user, use, ctx) };
    },
    async renderError(ctx, out, error) {
      const code = AUTHZ_CODES[out.error] ?? 9002313;
      const params = ctx.oidc?.params ?? {};
      let message = hasAadCode(out.error_description) ? out.error_description.replace(/^AADSTS\d+: /, '')
        : `${out.error_description ?? out.error}${error?.error_detail ? ` (${error.error_detail})` : ''}`;
      if (out.error === 'invalid_redirect_uri') {
        message = `The redirect URI '${params.redirect_uri}' specified in the request does not match the redirect URIs configured for the application '${params.client_id}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal.`;
      } else if (out.error === 'invalid_client' && params.client_id) {
        message = `Application with identifier '${params.client_id}' was not found in the directory '${t.domains[0]}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.`;
      }
      const body = aadErrorBody(out.error, code, message);
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sign in to your account</title></head><body>
<h1>Sorry, but we're having trouble signing you in.</h1>
<p id="aadsts">${escapeHtml(`AADSTS${code}: ${message}`)}</p>
<pre id="error">${escapeHtml(JSON.stringify(body, null, 2))}</pre></body></html>`;
    },
  });

  provider.on('grant.error', (ctx, err) => { ctx.state.aadErr = err; });
  provider.on('server_error', (_ctx, err) => { process.stderr.write(`entra.mjs: server_error ${err?.stack ?? err}\n`); });

  provider.use(async (ctx, next) => {
    await next();
    const route = ctx.oidc?.route;
    if (route === 'authorization' || route === 'resume') {
      rewriteAuthorizationResponse(ctx);
    } else if (route === 'end_session' && typeof ctx.body === 'string') {
      const xsrf = extractXsrf(ctx.body);
      if (xsrf) {
        // Non-interactive sign-out: skip the confirmation page.
        const confirm = new URL(ctx.oidc.urlFor('end_session_confirm'));
        confirm.search = new URLSearchParams({ xsrf, logout: 'yes' }).toString();
        ctx.status = 303;
        ctx.redirect(confirm.href);
      }
    } else if ((route === 'end_session' || route === 'end_session_confirm') && ctx.body?.error && !ctx.body.error_codes) {
      ctx.body = aadErrorBody(ctx.body.error, 9002313, `Invalid request. (${ctx.body.error_description ?? ctx.body.error})`);
    } else if (route === 'token' && ctx.body && typeof ctx.body === 'object') {
      if (ctx.body.error) {
        const err = ctx.state.aadErr;
        let [code, message] = tokenErrorCode(ctx.body, err);
        const code0 = ctx.oidc.params?.code;
        if (ctx.body.error === 'invalid_grant' && /code not found/.test(err?.error_detail ?? '') && tenantOwning('AuthorizationCode', code0)) {
          [code, message] = [700005, 'Provided Authorization Code is intended to use against other tenant, thus rejected.'];
        }
        ctx.body = aadErrorBody(ctx.body.error, code, message);
      } else if (ctx.body.access_token && ctx.body.expires_in !== undefined) {
        ctx.body = { ...ctx.body, ext_expires_in: ctx.body.expires_in };
      }
    }
  });

  return { provider, callback: provider.callback() };
}

function buildProviders() {
  for (const t of TENANTS) providers.set(t.id, buildProvider(t));
}

// Hand a request to a tenant's provider, as if mounted at /{tenant-guid}.
function dispatch(t, req, res, rest, mount = `/${t.id}`) {
  req.originalUrl = `${mount}${rest}`;
  req.url = rest;
  return providers.get(t.id).callback(req, res);
}

// ---------------------------------------------------------------------------------
// Entra-shaped metadata
// ---------------------------------------------------------------------------------

function discoveryDoc(seg, issuer) {
  const a = `${base}/${seg}`;
  return {
    token_endpoint: `${a}/oauth2/v2.0/token`,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
    jwks_uri: `${a}/discovery/v2.0/keys`,
    response_modes_supported: ['query', 'fragment', 'form_post'],
    subject_types_supported: ['pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
    response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
    scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
    issuer,
    request_uri_parameter_supported: false,
    userinfo_endpoint: `${base}/graph/oidc/userinfo`,
    authorization_endpoint: `${a}/oauth2/v2.0/authorize`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${a}/oauth2/v2.0/logout`,
    claims_supported: ['sub', 'iss', 'cloud_instance_name', 'cloud_instance_host_name', 'cloud_graph_host_name', 'msgraph_host', 'aud', 'exp', 'iat', 'auth_time', 'acr', 'nonce', 'preferred_username', 'name', 'tid', 'ver', 'at_hash', 'c_hash', 'email'],
    tenant_region_scope: null,
    cloud_instance_name: 'microsoftonline.com',
    // No code_challenge_methods_supported: Entra does not advertise PKCE either.
  };
}

function jwksDoc(issuer) {
  return {
    keys: signingKeys.map(({ kid, private: p }) => ({ kty: 'RSA', use: 'sig', kid, x5t: kid, n: p.n, e: p.e, issuer })),
  };
}

const METADATA_HEADERS = { 'cache-control': 'max-age=86400, private', 'access-control-allow-origin': '*' };

// ---------------------------------------------------------------------------------
// Request helpers
// ---------------------------------------------------------------------------------

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks);
}
// After the stream is drained, oidc-provider reads the body from req.body.
function setBody(req, text) {
  req.body = Buffer.from(text);
  req.headers['content-type'] = 'application/x-www-form-urlencoded';
  req.headers['content-length'] = String(req.body.length);
  delete req.headers['transfer-encoding'];
}

function parseCookies(req) {
  const out = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}
const tenantsWithSessionCookie = (req) => {
  const cookies = parseCookies(req);
  return TENANTS.filter((t) => cookies[`_session_${t.name}`]);
};

function decodeJwtPayload(jwt) {
  try { return JSON.parse(Buffer.from(String(jwt).split('.')[1], 'base64url').toString()); } catch { return undefined; }
}

// Offline access: Entra issues a refresh token whenever `offline_access` is asked for;
// oidc-provider (OIDC Core) only keeps it with prompt=consent, so add that here.
// The consent is granted at once by the interaction handler.
function adjustAuthorizeParams(params) {
  const scopes = (params.get('scope') ?? '').split(' ');
  const prompt = (params.get('prompt') ?? '').split(' ').filter(Boolean);
  if (scopes.includes('offline_access') && !prompt.includes('consent') && !prompt.includes('none')) {
    params.set('prompt', [...prompt, 'consent'].join(' '));
  }
  return params;
}

async function findClient(clientId) {
  for (const { provider } of providers.values()) {
    try {
      const c = await provider.Client.find(String(clientId ?? ''));
      if (c) return c;
    } catch { /* invalid client id */ }
  }
  return undefined;
}

// An authorization error the front decides on (before any tenant is chosen).
async function authorizeError(res, params, error, code, message) {
  const client = await findClient(params.get('client_id'));
  const redirectUri = params.get('redirect_uri');
  if (!client || !redirectUri || !client.redirectUriAllowed(redirectUri)) {
    errorPage(res, 400, code, message, { error });
    return;
  }
  const out = { error, error_description: aadFields(code, message).description };
  if (params.get('state')) out.state = params.get('state');
  const mode = params.get('response_mode') ?? ((params.get('response_type') ?? 'code').includes('token') ? 'fragment' : 'query');
  if (mode === 'form_post') {
    const inputs = Object.entries(out).map(([k, v]) => `<input type="hidden" name="${k}" value="${escapeHtml(v)}"/>`).join('\n');
    const html = `<!DOCTYPE html><html><head><title>Submitting Callback</title></head><body onload="document.forms[0].submit()"><form method="post" action="${escapeHtml(redirectUri)}">${inputs}</form></body></html>`;
    res.writeHead(400, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(html);
    return;
  }
  const u = new URL(redirectUri);
  if (mode === 'fragment') u.hash = new URLSearchParams(out).toString();
  else for (const [k, v] of Object.entries(out)) u.searchParams.set(k, v);
  res.writeHead(303, { location: u.href, 'cache-control': 'no-store' });
  res.end();
}

// ---------------------------------------------------------------------------------
// Non-interactive sign-in (stand-in for the sign-in UI): the user is named by login_hint
// ---------------------------------------------------------------------------------

async function interaction(t, req, res) {
  const { provider } = providers.get(t.id);
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    errorPage(res, 400, 90014, `The interaction session was not found or expired (${err.message}).`);
    return;
  }
  const { prompt, params, session } = details;
  const finish = (result) => provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
  const deny = (error, code, message) => finish({ error, error_description: aadFields(code, message).description });

  if (prompt.name === 'login' || prompt.name === 'select_account') {
    const hint = params.login_hint;
    let user;
    if (hint) {
      user = findUserByLogin(hint);
      if (!user) {
        return deny('access_denied', 50034, `The user account ${hint} does not exist in the ${t.domains[0]} directory. To sign into this application, the account must be added to the directory.`);
      }
      if (user.tid !== t.id) {
        return deny('access_denied', 50020, `User account '${hint}' from identity provider '${user.tenant}' does not exist in tenant '${t.domains[0]}' and cannot access the application '${params.client_id}' in that tenant.`);
      }
    } else if (session?.accountId && users.get(session.accountId)) {
      user = users.get(session.accountId); // re-authentication (prompt=login, max_age) or account picker
    } else {
      return deny('login_required', 50058, 'A silent sign-in request was sent but no user is signed in. (This test identity provider has no sign-in UI: pass login_hint.)');
    }
    if (user.blocked) {
      return deny('access_denied', 50057, 'The user account is disabled.');
    }
    const result = { login: { accountId: user.oid, amr: ['pwd'] } };
    if (prompt.name === 'select_account') result.select_account = {};
    return finish(result);
  }

  if (prompt.name === 'consent') {
    const { details: missing } = prompt;
    let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
    if (!grant) grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    if (missing.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    return finish({ consent: details.grantId ? {} : { grantId } });
  }

  return deny('interaction_required', 50058, `Unsupported prompt ${prompt.name}.`);
}

// ---------------------------------------------------------------------------------
// Microsoft Graph stand-in (fake): group membership and /me, authenticated by the
// access token issued by this provider
// ---------------------------------------------------------------------------------

// App-only tokens (the client credentials grant), by token: { tenant, clientId, exp }.
const appTokens = new Map();
function clientCredentials(tenant, params, res) {
  const spec = clientSpecs.find((c) => c.client_id === params.client_id);
  if (!spec || spec.client_secret !== params.client_secret) {
    return sendJson(res, 401, aadErrorBody('invalid_client', 7000215, 'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.'));
  }
  if (!String(params.scope ?? '').endsWith('/.default')) {
    return sendJson(res, 400, aadErrorBody('invalid_scope', 1002012, 'The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).'));
  }
  const token = crypto.randomBytes(24).toString('base64url');
  appTokens.set(token, { tenant, clientId: spec.client_id, exp: Date.now() + 3600 * 1000 });
  return sendJson(res, 200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: token });
}

async function graphAuth(req) {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (!m) return { status: 401, code: 'InvalidAuthenticationToken', message: 'Access token is empty.' };
  const app = appTokens.get(m[1]);
  if (app) {
    if (app.exp < Date.now()) return { status: 401, code: 'InvalidAuthenticationToken', message: 'Lifetime validation failed, the token is expired.' };
    // An application reads any user of its own tenant (GroupMember.Read.All), and no /me.
    const who = /^\/graph\/v1\.0\/users\/([^/]+)/.exec(new URL(req.url, base).pathname)?.[1];
    const user = who && users.get(decodeURIComponent(who).toLowerCase());
    if (!who) return { status: 400, code: 'BadRequest', message: '/me request is only valid with delegated authentication flow.' };
    if (!user || user.tid !== app.tenant.id) return { status: 404, code: 'Request_ResourceNotFound', message: `Resource '${decodeURIComponent(who)}' does not exist or one of its queried reference-property objects are not present.` };
    return { tenant: app.tenant, user, app };
  }
  const t = tenantOwning('AccessToken', m[1]);
  if (!t) return { status: 401, code: 'InvalidAuthenticationToken', message: 'Access token validation failure. Invalid audience.' };
  const token = await providers.get(t.id).provider.AccessToken.find(m[1]);
  if (!token) return { status: 401, code: 'InvalidAuthenticationToken', message: 'Lifetime validation failed, the token is expired.' };
  const user = users.get(token.accountId);
  if (!user) return { status: 404, code: 'Request_ResourceNotFound', message: 'User not found.' };
  return { tenant: t, token, user };
}
function graphError(res, status, code, message) {
  sendJson(res, status, { error: { code, message, innerError: { date: new Date().toISOString().slice(0, 19), 'request-id': crypto.randomUUID(), 'client-request-id': crypto.randomUUID() } } });
}
const groupObject = (id, select) => {
  const full = { '@odata.type': '#microsoft.graph.group', id, displayName: GROUPS.get(id) ?? id, securityEnabled: true };
  if (!select) return full;
  const out = { '@odata.type': full['@odata.type'] };
  for (const f of select) if (f in full) out[f] = full[f];
  return out;
};

async function graph(req, res, url) {
  const p = url.pathname;
  if (p === '/graph/oidc/userinfo') {
    const auth = await graphAuth(req);
    if (auth.status) return graphError(res, auth.status, auth.code, auth.message);
    return dispatch(auth.tenant, req, res, `/oidc/userinfo${url.search}`, '/graph');
  }
  const auth = await graphAuth(req);
  if (auth.status) return graphError(res, auth.status, auth.code, auth.message);
  const { user } = auth;

  let m = /^\/graph\/v1\.0\/(?:me|users\/([^/]+))(\/.*)?$/.exec(p);
  if (!m) return graphError(res, 400, 'BadRequest', `Resource not found for the segment '${p}'.`);
  const [, who, sub = ''] = m;
  if (who && decodeURIComponent(who).toLowerCase() !== user.oid && decodeURIComponent(who).toLowerCase() !== user.upn) {
    return graphError(res, 403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
  }

  if (sub === '' && req.method === 'GET') {
    return sendJson(res, 200, {
      '@odata.context': `${base}/graph/v1.0/$metadata#users/$entity`,
      id: user.oid, displayName: user.name, givenName: user.given_name, surname: user.family_name,
      mail: user.email ?? null, userPrincipalName: user.upn,
    });
  }
  if ((sub === '/transitiveMemberOf' || sub === '/memberOf') && req.method === 'GET') {
    const q = url.searchParams;
    const top = Math.min(Math.max(Number(q.get('$top') ?? 100) || 100, 1), 999);
    const skip = Number(q.get('$skiptoken') ?? 0) || 0;
    const select = q.get('$select') ? q.get('$select').split(',').map((s) => s.trim()) : undefined;
    const page = user.groups.slice(skip, skip + top).map((id) => groupObject(id, select));
    const body = { '@odata.context': `${base}/graph/v1.0/$metadata#directoryObjects${select ? `(${select.join(',')})` : ''}` };
    if (q.get('$count') === 'true') body['@odata.count'] = user.groups.length;
    if (skip + top < user.groups.length) {
      const next = new URL(url.href, base);
      next.searchParams.set('$skiptoken', String(skip + top));
      next.searchParams.set('$top', String(top));
      body['@odata.nextLink'] = `${base}${next.pathname}${next.search}`;
    }
    body.value = page;
    return sendJson(res, 200, body);
  }
  if ((sub === '/getMemberObjects' || sub === '/getMemberGroups') && req.method === 'POST') {
    await readBody(req);
    return sendJson(res, 200, { '@odata.context': `${base}/graph/v1.0/$metadata#Collection(Edm.String)`, value: user.groups });
  }
  return graphError(res, 400, 'BadRequest', `Unsupported request ${req.method} ${p}.`);
}

// ---------------------------------------------------------------------------------
// Front router
// ---------------------------------------------------------------------------------

function resolveAuthority(seg) {
  const s = decodeURIComponent(seg).toLowerCase();
  if (s === 'common' || s === 'organizations') return { multi: s };
  if (s === 'consumers') return { tenant: tenantById.get(CONSUMERS_TID), seg: 'consumers' };
  const t = tenantById.get(s) ?? tenantByDomain.get(s);
  return t ? { tenant: t, seg: t.id } : undefined;
}

async function handle(req, res) {
  const url = new URL(req.url, base);
  const path = url.pathname;

  if (path === '/_admin/rotate-keys' && req.method === 'POST') {
    await readBody(req);
    const fresh = newSigningKey();
    const drop = ['1', 'true', 'yes'].includes(url.searchParams.get('drop') ?? '');
    const dropped = drop ? signingKeys.map((k) => k.kid) : [];
    signingKeys = drop ? [fresh] : [fresh, ...signingKeys];
    buildProviders();
    return sendJson(res, 200, { signing_kid: fresh.kid, kids: signingKeys.map((k) => k.kid), dropped });
  }
  if (path === '/_admin/fixtures' && req.method === 'GET') {
    return sendJson(res, 200, {
      base,
      tenants: Object.fromEntries(TENANTS.map((t) => [t.name, { id: t.id, domains: t.domains, issuer: `${base}/${t.id}/v2.0` }])),
      clients: clientSpecs.map(({ client_id, client_secret, redirect_uris, post_logout_redirect_uris, tenants }) => ({ client_id, client_secret, redirect_uris, post_logout_redirect_uris, tenants })),
      users: [...users.values()].map((u) => ({ upn: u.upn, oid: u.oid, tid: u.tid, tenant: u.tenant, email: u.email, xms_edov: u.xms_edov, roles: u.roles, group_count: u.groups.length, groups: u.groups.length > 10 ? undefined : u.groups })),
      signing_kids: signingKeys.map((k) => k.kid),
    });
  }
  if (path.startsWith('/graph/')) return graph(req, res, url);
  if (path === '/error') {
    return errorPage(res, 200, Number(url.searchParams.get('code')) || 0, 'See the error code for details.');
  }

  const m = /^\/([^/]+)(\/.*)?$/.exec(path);
  if (!m) return sendJson(res, 404, { error: 'not_found' });
  const [, seg, restPath = '/'] = m;
  const rawRest = req.url.slice(1 + seg.length) || '/';
  const auth = resolveAuthority(seg);
  if (!auth) {
    const body = aadErrorBody('invalid_tenant', 90002, `Tenant '${decodeURIComponent(seg)}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`);
    if (/^\/oauth2\/v2\.0\/(authorize|logout)/.test(restPath)) return errorPage(res, 400, 90002, body.error_description.split('\r\n')[0].replace(/^AADSTS90002: /, ''), { error: 'invalid_tenant' });
    return sendJson(res, 400, body);
  }

  // Metadata
  if (restPath === '/v2.0/.well-known/openid-configuration' && req.method === 'GET') {
    const issuer = auth.multi ? `${base}/{tenantid}/v2.0` : `${base}/${auth.tenant.id}/v2.0`;
    return sendJson(res, 200, discoveryDoc(auth.multi ?? auth.seg, issuer), METADATA_HEADERS);
  }
  if (restPath === '/discovery/v2.0/keys' && req.method === 'GET') {
    const issuer = auth.multi ? `${base}/{tenantid}/v2.0` : `${base}/${auth.tenant.id}/v2.0`;
    return sendJson(res, 200, jwksDoc(issuer), METADATA_HEADERS);
  }

  // Sign-in interaction (no UI)
  const im = /^\/interaction\/([^/]+)$/.exec(restPath);
  if (im && auth.tenant && req.method === 'GET') return interaction(auth.tenant, req, res);

  // Authorization endpoint (and its resume step)
  if (restPath === '/oauth2/v2.0/authorize' || restPath.startsWith('/oauth2/v2.0/authorize/')) {
    const resume = restPath !== '/oauth2/v2.0/authorize';
    let params;
    if (!resume) {
      if (req.method === 'POST') {
        params = adjustAuthorizeParams(new URLSearchParams((await readBody(req)).toString()));
        setBody(req, params.toString());
      } else {
        params = adjustAuthorizeParams(new URLSearchParams(url.search));
      }
    }
    let t = auth.tenant;
    if (auth.multi && !resume) {
      // Home-realm discovery stand-in: login_hint, then domain_hint, then an existing session.
      const hint = params.get('login_hint');
      const user = findUserByLogin(hint);
      const domain = hint?.includes('@') ? hint.split('@').pop().toLowerCase() : undefined;
      t = (user && tenantById.get(user.tid)) ?? (domain && tenantByDomain.get(domain))
        ?? tenantByDomain.get((params.get('domain_hint') ?? '').toLowerCase());
      if (!t) {
        const withSession = tenantsWithSessionCookie(req);
        if (withSession.length === 1) [t] = withSession;
      }
      const client = await findClient(params.get('client_id'));
      const spec = clientSpecs.find((c) => c.client_id === params.get('client_id'));
      if (client && spec?.tenants) {
        return authorizeError(res, params, 'invalid_request', 50194, `Application '${spec.client_id}' is not configured as a multi-tenant application. Usage of the /common endpoint is not supported for such applications created after '10/15/2018'. Use a tenant-specific endpoint or configure the application to be multi-tenant.`);
      }
      if (t && t.id === CONSUMERS_TID && auth.multi === 'organizations') {
        return authorizeError(res, params, 'access_denied', 50020, `User account '${hint}' from identity provider 'live.com' does not exist in tenant 'organizations' and cannot access the application '${params.get('client_id')}' in that tenant.`);
      }
      if (!t) {
        if (hint) return authorizeError(res, params, 'access_denied', 50034, `The user account ${hint} does not exist in any known directory.`);
        return authorizeError(res, params, 'login_required', 50058, 'A silent sign-in request was sent but no user is signed in. (This test identity provider has no sign-in UI: pass login_hint or domain_hint.)');
      }
    }
    if (!t) {
      // resume under /common: the uid belongs to whichever tenant issued the resume cookie
      t = TENANTS.find((x) => parseCookies(req)[`_interaction_resume_${x.name}`]) ?? TENANTS[0];
    }
    const rest = resume ? rawRest : `/oauth2/v2.0/authorize${req.method === 'GET' ? `?${params}` : ''}`;
    return dispatch(t, req, res, rest);
  }

  // Token endpoint
  if (restPath === '/oauth2/v2.0/token') {
    if (auth.tenant && req.method === 'POST') {
      const body = await readBody(req);
      const params = querystring.parse(body.toString());
      if (params.grant_type === 'client_credentials') return clientCredentials(auth.tenant, params, res);
      setBody(req, body.toString());
    }
    if (auth.tenant) return dispatch(auth.tenant, req, res, rawRest);
    const body = await readBody(req);
    const params = querystring.parse(body.toString());
    const t = tenantOwning('AuthorizationCode', params.code) ?? tenantOwning('RefreshToken', params.refresh_token) ?? TENANTS[0];
    req.body = body;
    return dispatch(t, req, res, rawRest);
  }

  // RP-initiated logout
  if (restPath === '/oauth2/v2.0/logout' || restPath.startsWith('/oauth2/v2.0/logout/')) {
    let t = auth.tenant;
    let rest = rawRest;
    if (restPath === '/oauth2/v2.0/logout/confirm' && req.method === 'GET') {
      await readBody(req);
      req.method = 'POST';
      setBody(req, url.searchParams.toString());
      rest = '/oauth2/v2.0/logout/confirm';
    }
    if (!t) {
      let hintTid;
      if (restPath === '/oauth2/v2.0/logout') {
        let params = url.searchParams;
        if (req.method === 'POST') {
          const body = (await readBody(req)).toString();
          params = new URLSearchParams(body);
          setBody(req, body);
        }
        hintTid = decodeJwtPayload(params.get('id_token_hint'))?.tid;
      }
      t = tenantById.get(hintTid) ?? tenantsWithSessionCookie(req)[0] ?? TENANTS[0];
    }
    return dispatch(t, req, res, rest);
  }

  return sendJson(res, 404, { error: 'not_found', error_description: `No route for ${req.method} ${path}` });
}

// ---------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    process.stderr.write(`entra.mjs: ${err?.stack ?? err}\n`);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err?.message ?? err) });
    else res.end();
  });
});

server.listen(opts.port, opts.host, () => {
  const { port } = server.address();
  base = `http://${opts.host}:${port}`;
  buildProviders();
  process.stdout.write(`${JSON.stringify({
    ready: true,
    base,
    tenants: Object.fromEntries(TENANTS.map((t) => [t.name, t.id])),
  })}\n`);
});

function shutdown(why) {
  process.stderr.write(`entra.mjs: exiting (${why})\n`);
  server.close();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

// Do not outlive the test that started us: exit when stdin (a pipe) closes,
// or when the parent process goes away.
function stdinIsPipe() {
  try {
    const st = fs.fstatSync(0);
    return st.isFIFO() || st.isSocket();
  } catch {
    return false;
  }
}
if (opts.stdinExit === 'on' || (opts.stdinExit === 'auto' && stdinIsPipe())) {
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
}
const parentPid = process.ppid;
setInterval(() => {
  if (process.ppid !== parentPid) shutdown('parent exited');
}, 1000).unref();
