// A fake of GitHub's, Facebook's and Amazon's OAuth 2.0 web flows for the
// sign-in tests (`--provider github|facebook|amazon`). It is a fake, named
// so: none of them can run here. What it imitates is each provider's
// documented contract:
//
// GitHub (OAuth apps, not OpenID Connect):
//   GET  /login/oauth/authorize     ?client_id&redirect_uri&state&scope
//                                   [&code_challenge&code_challenge_method=S256]
//                                   [&login=<user>] (the user who approves)
//   POST /login/oauth/access_token  form: client_id, client_secret, code,
//                                   redirect_uri[, code_verifier]; errors
//                                   come back with 200 and an `error` member
//   GET  /api/user, /api/user/emails   Authorization: Bearer <token>
//   POST /_admin/revoke             (test control) every token stops working
// Facebook (Facebook Login, manual flow; Graph API v19.0):
//   GET  /v19.0/dialog/oauth        ?client_id&redirect_uri&state&scope
//   POST /v19.0/oauth/access_token  form: client_id, client_secret, code,
//                                   redirect_uri; JSON {access_token,...}
//   GET  /v19.0/me?fields=id,name,email   Authorization: Bearer <token>;
//                                   `email` only for a confirmed address
// Amazon (Login with Amazon):
//   GET  /ap/oa                     ?client_id&redirect_uri&state&scope
//                                   &response_type=code[&code_challenge...]
//   POST /auth/o2/token             form: grant_type, code, redirect_uri,
//                                   client_id, client_secret[, code_verifier]
//   GET  /user/profile              Authorization: Bearer <token>;
//                                   {user_id, name, email}
//
// The user who "approves" is GitHub's `login` parameter, or `login_hint`
// for the others (a test convention). Errors come back as each provider
// sends them: GitHub `{error, error_description}` with 200, Facebook
// `{error: {message, type, code}}` with 400, Amazon
// `{error, error_description}` with 400.
//
// Started as `node tests/oidc/oauth2.mjs --provider github --port 0`;
// prints {"ready":true,"base":"http://127.0.0.1:PORT"} and exits when
// stdin closes.

import http from 'node:http';
import crypto from 'node:crypto';

const args = process.argv.slice(2);
const arg = (name, d) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : d; };
const provider = arg('--provider', 'facebook');
const port = Number(arg('--port', '0'));

const CLIENTS = {
  github: { id: 'Iv1.portcullis-test', secret: 'gh-secret-value-1' },
  facebook: { id: '1234567890123456', secret: 'fb-app-secret-1' },
  amazon: { id: 'amzn1.application-oa2-client.portcullis', secret: 'amzn-secret-1' },
};
const CLIENT = CLIENTS[provider];
const USERS = {
  github: {
    octocat: { id: 583231, login: 'octocat', name: 'The Octocat',
      emails: [{ email: 'octocat@github.test', primary: true, verified: true }] },
    // Claims octocat's address without having verified it.
    mona: { id: 9919, login: 'mona', name: 'Mona',
      emails: [{ email: 'octocat@github.test', primary: true, verified: false }] },
  },
  facebook: {
    ana: { id: '10224000000000001', name: 'Ana Lima', email: 'ana@example.test' },
    // No confirmed email: Facebook leaves `email` out.
    ben: { id: '10224000000000002', name: 'Ben Ode' },
  },
  amazon: {
    ana: { user_id: 'amzn1.account.AF4AAAAAAAAAAAAAAAAAAAAAAAAA', name: 'Ana Lima', email: 'ana@example.test' },
  },
}[provider];
const codes = new Map();
const tokens = new Map();

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
function fail(res, message, code = 'bad_verification_code') {
  if (provider === 'github') return json(res, 200, { error: code, error_description: message });
  if (provider === 'facebook') {
    return json(res, 400, { error: { message, type: 'OAuthException', code: 100 } });
  }
  return json(res, 400, { error: 'invalid_grant', error_description: message });
}

const paths = {
  github: { authorize: '/login/oauth/authorize', token: '/login/oauth/access_token', me: '/api/user', user: 'login' },
  facebook: { authorize: '/v19.0/dialog/oauth', token: '/v19.0/oauth/access_token', me: '/v19.0/me', user: 'login_hint' },
  amazon: { authorize: '/ap/oa', token: '/auth/o2/token', me: '/user/profile', user: 'login_hint' },
}[provider];

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (req.method === 'GET' && url.pathname === paths.authorize) {
    const q = url.searchParams;
    if (q.get('client_id') !== CLIENT.id) return json(res, 400, { error: 'invalid client_id' });
    const user = USERS[q.get(paths.user) || ''];
    const redirect = new URL(q.get('redirect_uri'));
    if (!user) {
      redirect.searchParams.set('error', 'access_denied');
      redirect.searchParams.set('error_description', 'The user denied the request.');
    } else {
      const code = crypto.randomBytes(12).toString('hex');
      codes.set(code, { user, redirect_uri: q.get('redirect_uri'), challenge: q.get('code_challenge'), used: false });
      redirect.searchParams.set('code', code);
    }
    redirect.searchParams.set('state', q.get('state') || '');
    res.writeHead(302, { location: redirect.toString() });
    return res.end();
  }
  if (req.method === 'POST' && url.pathname === paths.token) {
    const form = new URLSearchParams(await readBody(req));
    const grant = codes.get(form.get('code') || '');
    if (form.get('client_id') !== CLIENT.id || form.get('client_secret') !== CLIENT.secret) {
      return fail(res, 'Error validating client secret.', 'incorrect_client_credentials');
    }
    if (!grant || grant.used) return fail(res, 'This authorization code has been used.');
    if (grant.redirect_uri !== form.get('redirect_uri')) return fail(res, 'redirect_uri mismatch', 'redirect_uri_mismatch');
    if (grant.challenge) {
      const digest = crypto.createHash('sha256').update(form.get('code_verifier') || '').digest('base64url');
      if (digest !== grant.challenge) return fail(res, 'code_verifier mismatch');
    }
    grant.used = true;
    const token = (provider === 'github' ? 'gho_' : '') + crypto.randomBytes(24).toString('hex');
    tokens.set(token, grant.user);
    return json(res, 200, provider === 'github'
      ? { access_token: token, token_type: 'bearer', scope: 'read:user,user:email' }
      : { access_token: token, token_type: 'bearer', expires_in: 3600 });
  }
  if (req.method === 'GET' && (url.pathname === paths.me || (provider === 'github' && url.pathname === '/api/user/emails'))) {
    const token = (req.headers.authorization || '').replace(/^(Bearer|token)\s+/i, '');
    const user = tokens.get(token);
    if (provider === 'github') {
      if (!user) return json(res, 401, { message: 'Requires authentication' });
      if (url.pathname === '/api/user') return json(res, 200, { id: user.id, login: user.login, name: user.name, email: null });
      return json(res, 200, user.emails.map((e) => ({ ...e, visibility: 'private' })));
    }
    if (!user) return fail(res, 'Invalid OAuth access token.');
    return json(res, 200, user);
  }
  if (provider === 'github' && req.method === 'POST' && url.pathname === '/_admin/revoke') {
    // Test control, not GitHub's: every token issued so far stops working,
    // as when a user revokes the app's authorization.
    tokens.clear();
    return json(res, 200, { revoked: true });
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
