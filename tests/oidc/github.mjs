// A fake GitHub for the sign-in tests: GitHub's OAuth web flow (not
// OpenID Connect) and the two REST calls a relying party makes afterwards.
// It is a fake, named so: GitHub cannot run here. What it imitates is
// GitHub's documented contract:
//
//   GET  /login/oauth/authorize   ?client_id&redirect_uri&state&scope
//                                 [&code_challenge&code_challenge_method=S256]
//                                 [&login=<user>]  (the user who "approves")
//   POST /login/oauth/access_token  form: client_id, client_secret, code,
//                                 redirect_uri[, code_verifier]; JSON with
//                                 `Accept: application/json`
//   GET  /api/user                 Authorization: Bearer <token>
//   GET  /api/user/emails          Authorization: Bearer <token>
//   POST /_admin/revoke             (test control) every token stops working
//
// Started as `node tests/oidc/github.mjs --port 0`; prints one JSON line,
// {"ready":true,"base":"http://127.0.0.1:PORT"}, and exits when stdin
// closes (when stdin is a pipe).

import http from 'node:http';
import crypto from 'node:crypto';

const CLIENT = { id: 'Iv1.portcullis-test', secret: 'gh-secret-value-1' };
const USERS = {
  octocat: { id: 583231, login: 'octocat', name: 'The Octocat',
    emails: [{ email: 'octocat@github.test', primary: true, verified: true }] },
  mona: { id: 9919, login: 'mona', name: 'Mona',
    emails: [{ email: 'octocat@github.test', primary: true, verified: false }] },
};
const codes = new Map();   // code -> { user, redirect_uri, challenge, used }
const tokens = new Map();  // token -> user

const args = process.argv.slice(2);
const portArg = args.indexOf('--port');
const port = portArg >= 0 ? Number(args[portArg + 1]) : 0;

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

function userOf(req) {
  const auth = req.headers.authorization || '';
  const token = auth.replace(/^(Bearer|token)\s+/i, '');
  return tokens.get(token);
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (req.method === 'GET' && url.pathname === '/login/oauth/authorize') {
    const q = url.searchParams;
    if (q.get('client_id') !== CLIENT.id) return json(res, 404, { error: 'not found' });
    const user = USERS[q.get('login') || ''];
    const redirect = new URL(q.get('redirect_uri'));
    if (!user) {
      redirect.searchParams.set('error', 'access_denied');
      redirect.searchParams.set('error_description', 'The user has denied your application access.');
    } else {
      const code = crypto.randomBytes(10).toString('hex');
      codes.set(code, { user, redirect_uri: q.get('redirect_uri'), challenge: q.get('code_challenge'), used: false });
      redirect.searchParams.set('code', code);
    }
    redirect.searchParams.set('state', q.get('state') || '');
    res.writeHead(302, { location: redirect.toString() });
    return res.end();
  }
  if (req.method === 'POST' && url.pathname === '/login/oauth/access_token') {
    const form = new URLSearchParams(await readBody(req));
    const grant = codes.get(form.get('code') || '');
    const fail = (error) => json(res, 200, { error, error_description: error });
    if (form.get('client_id') !== CLIENT.id || form.get('client_secret') !== CLIENT.secret) return fail('incorrect_client_credentials');
    if (!grant || grant.used) return fail('bad_verification_code');
    if (grant.redirect_uri !== form.get('redirect_uri')) return fail('redirect_uri_mismatch');
    if (grant.challenge) {
      const verifier = form.get('code_verifier') || '';
      const digest = crypto.createHash('sha256').update(verifier).digest('base64url');
      if (digest !== grant.challenge) return fail('bad_verification_code');
    }
    grant.used = true;
    const token = 'gho_' + crypto.randomBytes(16).toString('hex');
    tokens.set(token, grant.user);
    return json(res, 200, { access_token: token, token_type: 'bearer', scope: 'read:user,user:email' });
  }
  if (req.method === 'GET' && (url.pathname === '/api/user' || url.pathname === '/api/user/emails')) {
    const user = userOf(req);
    if (!user) return json(res, 401, { message: 'Requires authentication' });
    if (url.pathname === '/api/user') {
      return json(res, 200, { id: user.id, login: user.login, name: user.name, email: null });
    }
    return json(res, 200, user.emails.map((e) => ({ ...e, visibility: 'private' })));
  }
  if (req.method === 'POST' && url.pathname === '/_admin/revoke') {
    // Test control, not GitHub's: every token issued so far stops working,
    // as when a user revokes the app's authorization.
    tokens.clear();
    return json(res, 200, { revoked: true });
  }
  json(res, 404, { message: 'Not Found' });
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
