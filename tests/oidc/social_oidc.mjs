// A fake of LinkedIn's, Twitch's, Google's and GitLab's OpenID Connect
// sign-in for the sign-in tests (`--provider linkedin|twitch|google|gitlab`). It is a fake, named so: neither can
// run here. It is written rather than configured from oidc-provider because
// what the tests need is each provider's departures from the common case,
// which oidc-provider (rightly) will not make:
//
// LinkedIn ("Sign In with LinkedIn using OpenID Connect"):
//   issuer                     <base>/oauth
//   GET  /oauth/.well-known/openid-configuration
//   GET  /oauth/v2/authorization  ?response_type=code&client_id&redirect_uri
//                                 &state&scope (openid profile email)
//   POST /oauth/v2/accessToken    form: grant_type, code, redirect_uri,
//                                 client_id, client_secret (client_secret_post
//                                 only); a `code_verifier` from a web app is
//                                 answered `invalid_client`, as LinkedIn does
//   GET  /oauth/openid/jwks
//   The ID token carries no `nonce`, whatever the request asked.
//
// Twitch:
//   issuer                     <base>/oauth2
//   GET  /oauth2/.well-known/openid-configuration
//   GET  /oauth2/authorize        ?response_type=code&client_id&redirect_uri
//                                 &state&nonce&scope&claims
//   POST /oauth2/token            form: client_id, client_secret, code,
//                                 grant_type, redirect_uri
//   GET  /oauth2/keys
//   The ID token carries `email`, `email_verified` and `preferred_username`
//   only when the `claims` parameter asks for them by name, and the email
//   only with the `user:read:email` scope. There is no `name` claim.
//
// Google:
//   issuer                     <base> (accounts.google.com), discovery at
//                              <base>/.well-known/openid-configuration
//   GET  /o/oauth2/v2/auth, POST /token (client_secret_post or _basic),
//   GET  /oauth2/v3/certs; PKCE and nonce as the specification has them.
//   Google documents that an ID token's `iss` may be `accounts.google.com`
//   without the scheme: the fake sends that spelling.
//
// GitLab (gitlab.com or self-managed):
//   issuer                     <base>, GET /oauth/authorize,
//   POST /oauth/token, GET /oauth/discovery/keys.
//
// The user who "approves" is `login_hint` (a test convention); an unknown
// one declines (`error=access_denied`). Test control, not the providers':
// `POST /_admin/forge?kind=nonce|issuer|audience` makes the next ID tokens
// wrong in that way, as a hostile or broken provider's would be.
//
// Started as `node tests/oidc/social_oidc.mjs --provider linkedin --port 0`;
// prints {"ready":true,"base":"http://127.0.0.1:PORT"} and exits when stdin
// closes.

import http from 'node:http';
import crypto from 'node:crypto';

const args = process.argv.slice(2);
const arg = (name, d) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : d; };
const provider = arg('--provider', 'linkedin');
const port = Number(arg('--port', '0'));

const CLIENT = {
  linkedin: { id: '86portcullis', secret: 'li-secret-1' },
  twitch: { id: 'portcullistwitchclient', secret: 'tw-secret-1' },
  google: { id: '1234-portcullis.apps.googleusercontent.com', secret: 'GOCSPX-portcullis' },
  gitlab: { id: 'gitlab-portcullis-app', secret: 'gloas-portcullis' },
}[provider];
const USERS = {
  linkedin: {
    ana: { sub: 'li-782bbtaQ', name: 'Ana Lima', given_name: 'Ana', family_name: 'Lima',
      email: 'ana@example.test', email_verified: true, locale: 'en_US' },
    // Claims ana's address without having verified it.
    eve: { sub: 'li-9evilEve', name: 'Eve', email: 'ana@example.test', email_verified: false },
  },
  twitch: {
    ana: { sub: '713936733', preferred_username: 'ana_lima', email: 'ana@example.test', email_verified: true },
  },
  google: {
    ana: { sub: '110169484474386276334', name: 'Ana Lima', email: 'ana@acme.com', email_verified: true, hd: 'acme.com' },
    // A Gmail address, outside the company's domain.
    bob: { sub: '110169484474386276335', name: 'Bob', email: 'bob@gmail.com', email_verified: true },
  },
  gitlab: {
    ana: { sub: '4242', name: 'Ana Lima', nickname: 'ana', email: 'ana@acme.com', email_verified: true },
  },
}[provider];
const base = { linkedin: '/oauth', twitch: '/oauth2', google: '', gitlab: '' }[provider];
const paths = {
  linkedin: { authorize: '/oauth/v2/authorization', token: '/oauth/v2/accessToken', jwks: '/oauth/openid/jwks' },
  twitch: { authorize: '/oauth2/authorize', token: '/oauth2/token', jwks: '/oauth2/keys' },
  google: { authorize: '/o/oauth2/v2/auth', token: '/token', jwks: '/oauth2/v3/certs' },
  gitlab: { authorize: '/oauth/authorize', token: '/oauth/token', jwks: '/oauth/discovery/keys' },
}[provider];
const pkce = provider === 'google' || provider === 'gitlab';

const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const kid = crypto.randomBytes(8).toString('hex');
const jwk = { ...publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };
const codes = new Map();
let forge = null;

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
function readBody(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c) => { data += c; });
    req.on('end', () => resolve(data));
  });
}
function sign(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64({ alg: 'RS256', kid, typ: 'JWT' })}.${b64(claims)}`;
  return `${input}.${crypto.sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  const origin = `http://127.0.0.1:${server.address().port}`;
  const issuer = origin + base;
  if (req.method === 'GET' && url.pathname === `${base}/.well-known/openid-configuration`) {
    return json(res, 200, {
      issuer,
      authorization_endpoint: origin + paths.authorize,
      token_endpoint: origin + paths.token,
      jwks_uri: origin + paths.jwks,
      response_types_supported: ['code'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      token_endpoint_auth_methods_supported: ['client_secret_post'],
      claims_parameter_supported: provider === 'twitch',
    });
  }
  if (req.method === 'GET' && url.pathname === paths.jwks) return json(res, 200, { keys: [jwk] });
  if (req.method === 'GET' && url.pathname === paths.authorize) {
    const q = url.searchParams;
    if (q.get('client_id') !== CLIENT.id) return json(res, 400, { error: 'invalid_client' });
    if (q.get('response_type') !== 'code') return json(res, 400, { error: 'unsupported_response_type' });
    const user = USERS[q.get('login_hint') || ''];
    const redirect = new URL(q.get('redirect_uri'));
    if (!user) {
      redirect.searchParams.set('error', 'access_denied');
      redirect.searchParams.set('error_description', 'The user declined.');
    } else {
      const code = crypto.randomBytes(12).toString('hex');
      let asked = {};
      try { asked = JSON.parse(q.get('claims') || '{}').id_token || {}; } catch { asked = {}; }
      codes.set(code, {
        user, redirect_uri: q.get('redirect_uri'), nonce: q.get('nonce'),
        scopes: (q.get('scope') || '').split(' '), asked, used: false,
        challenge: pkce ? q.get('code_challenge') : null,
      });
      redirect.searchParams.set('code', code);
    }
    redirect.searchParams.set('state', q.get('state') || '');
    res.writeHead(302, { location: redirect.toString() });
    return res.end();
  }
  if (req.method === 'POST' && url.pathname === paths.token) {
    if (req.headers.authorization && !pkce) {
      // LinkedIn and Twitch take the client's credentials in the form alone.
      return json(res, 401, { error: 'invalid_client', error_description: 'client_secret_post only' });
    }
    const form = new URLSearchParams(await readBody(req));
    if (req.headers.authorization) {
      const [id, secret] = Buffer.from(req.headers.authorization.replace(/^Basic /, ''), 'base64')
        .toString().split(':').map(decodeURIComponent);
      form.set('client_id', id);
      form.set('client_secret', secret);
    }
    if (form.get('client_id') !== CLIENT.id || form.get('client_secret') !== CLIENT.secret) {
      return json(res, 401, { error: 'invalid_client', error_description: 'Client authentication failed' });
    }
    if (provider === 'linkedin' && form.has('code_verifier')) {
      return json(res, 401, { error: 'invalid_client', error_description: 'Client authentication failed' });
    }
    const grant = codes.get(form.get('code') || '');
    if (!grant || grant.used || form.get('grant_type') !== 'authorization_code') {
      return json(res, 400, { error: 'invalid_grant' });
    }
    if (grant.redirect_uri !== form.get('redirect_uri')) return json(res, 400, { error: 'invalid_grant' });
    if (grant.challenge) {
      const digest = crypto.createHash('sha256').update(form.get('code_verifier') || '').digest('base64url');
      if (digest !== grant.challenge) return json(res, 400, { error: 'invalid_grant', error_description: 'PKCE' });
    }
    grant.used = true;
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: issuer, aud: CLIENT.id, iat: now, exp: now + 3600, sub: grant.user.sub };
    if (provider === 'linkedin') {
      Object.assign(claims, grant.user);
    } else if (pkce) {
      Object.assign(claims, grant.user, { nonce: grant.nonce, azp: CLIENT.id });
      // Google's other spelling of its issuer.
      if (provider === 'google') claims.iss = issuer.replace(/^https?:\/\//, '');
    } else {
      claims.azp = CLIENT.id;
      claims.nonce = grant.nonce;
      for (const k of ['preferred_username', 'email', 'email_verified']) {
        const allowed = k === 'preferred_username' || grant.scopes.includes('user:read:email');
        if (k in grant.asked && allowed) claims[k] = grant.user[k];
      }
    }
    if (forge === 'nonce') claims.nonce = 'not-the-flows-nonce';
    if (forge === 'issuer') claims.iss = 'https://attacker.test/oauth';
    if (forge === 'audience') claims.aud = 'another-client';
    return json(res, 200, {
      access_token: crypto.randomBytes(24).toString('hex'), token_type: 'bearer',
      expires_in: 3600, scope: grant.scopes.join(' '), id_token: sign(claims),
    });
  }
  if (req.method === 'POST' && url.pathname === '/_admin/forge') {
    forge = url.searchParams.get('kind');
    return json(res, 200, { forge });
  }
  json(res, 404, { error: 'not found' });
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ ready: true, base: `http://127.0.0.1:${server.address().port}` }) + '\n');
});
if (!process.stdin.isTTY) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.resume();
}
process.on('SIGTERM', () => process.exit(0));
