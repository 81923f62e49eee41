#!/usr/bin/python3
"""A SAML identity provider shaped like Microsoft Entra ID, for the tests.

Responses are signed by xmlsec1 (the reference XML-DSig implementation,
Debian's `xmlsec1`); the SP's AuthnRequest is decoded and read with pysaml2
(Debian's `python3-pysaml2`). Claims use Entra's URIs, the issuer is
`https://sts.windows.net/<tenant>/`, and the NameID is `user.mail`.

  idp.py serve [--port N] [--sp-cert PEM] [--encrypt-to PEM]
                              an IdP on 127.0.0.1; prints {"ready": true, "base": ...};
                              with --sp-cert, AuthnRequests must be signed with its key
                              (Entra's "Require verification certificates"); with
                              --encrypt-to, assertions are encrypted to that certificate
                              (Entra's token encryption)
  idp.py corpus DIR           writes the attack corpus and its manifest into DIR

The server signs in whoever the `login_hint` query parameter names (as the
OpenID test provider does); `GET /initiate?acs=URL&user=U&relay=R` makes an
IdP-initiated sign-in (Entra's "Test sign in"); `GET /logout-initiate?sp_slo=URL&user=U`
sends the SP a LogoutRequest (the user signed out at the IdP); `GET /logouts`
lists the logout messages received. It exits when stdin closes.
"""

import base64
import html
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

HERE = os.path.dirname(os.path.abspath(__file__))
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ISSUER = f"https://sts.windows.net/{TENANT}/"
KEY, CERT = os.path.join(HERE, "idp-key.pem"), os.path.join(HERE, "idp-cert.pem")
NEXT_KEY, NEXT_CERT = os.path.join(HERE, "idp-key-next.pem"), os.path.join(HERE, "idp-cert-next.pem")
ATTACKER_KEY, ATTACKER_CERT = os.path.join(HERE, "attacker-key.pem"), os.path.join(HERE, "attacker-cert.pem")
SP_KEY, SP_CERT = os.path.join(HERE, "sp-key.pem"), os.path.join(HERE, "sp-cert.pem")

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
EMAIL_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"

USERS = {
    "alice@contoso.test": {
        "oid": "a11ce000-0000-4000-8000-000000000001",
        "name": "Alice",
        "groups": ["g-admins", "g-staff"],
        "roles": ["Admin"],
    },
    "bob@contoso.test": {
        "oid": "b0b00000-0000-4000-8000-000000000002",
        "name": "Bob",
        "groups": ["g-staff"],
        "roles": [],
    },
    "many@contoso.test": {
        "oid": "3a4e0000-0000-4000-8000-000000000003",
        "name": "Many Groups",
        "groups": None,  # past 150: groups.link instead
        "roles": [],
    },
}

CLAIM = {
    "email": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "name": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    "oid": "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "tid": "http://schemas.microsoft.com/identity/claims/tenantid",
    "display": "http://schemas.microsoft.com/identity/claims/displayname",
    "idp": "http://schemas.microsoft.com/identity/claims/identityprovider",
    "groups": "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    "link": "http://schemas.microsoft.com/claims/groups.link",
    "role": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
}


def stamp(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def esc(s):
    return html.escape(s, quote=True)


def assertion(aid, user, audience, acs, now, in_response_to=None, issuer=ISSUER, lifetime=4200,
              confirm=300, authn_statements=1, name_id=None):
    u = USERS[user]
    session_index = f"_{uuid.uuid4().hex}"
    SESSIONS[user] = session_index
    irt = f' InResponseTo="{esc(in_response_to)}"' if in_response_to else ""
    attrs = [
        (CLAIM["tid"], [TENANT]),
        (CLAIM["oid"], [u["oid"]]),
        (CLAIM["idp"], [ISSUER]),
        (CLAIM["display"], [u["name"]]),
        (CLAIM["email"], [user]),
        (CLAIM["name"], [user]),
    ]
    if u["groups"] is None:
        attrs.append((CLAIM["link"], [f"https://graph.windows.net/{TENANT}/users/{u['oid']}/getMemberObjects"]))
    else:
        attrs.append((CLAIM["groups"], u["groups"]))
    if u["roles"]:
        attrs.append((CLAIM["role"], u["roles"]))
    attr_xml = "".join(
        f'<Attribute Name="{esc(n)}">' + "".join(f"<AttributeValue>{esc(v)}</AttributeValue>" for v in vs) + "</Attribute>"
        for n, vs in attrs
    )
    authn = (
        f'<AuthnStatement AuthnInstant="{stamp(now)}" SessionIndex="{session_index}">'
        "<AuthnContext><AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password"
        "</AuthnContextClassRef></AuthnContext></AuthnStatement>"
    ) * authn_statements
    return (
        f'<Assertion xmlns="{SAML}" ID="{aid}" IssueInstant="{stamp(now)}" Version="2.0">'
        f"<Issuer>{esc(issuer)}</Issuer>"
        f'<Subject><NameID Format="{EMAIL_FORMAT}">{esc(name_id or user)}</NameID>'
        f'<SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
        f'<SubjectConfirmationData{irt} NotOnOrAfter="{stamp(now + confirm)}" Recipient="{esc(acs)}"/>'
        "</SubjectConfirmation></Subject>"
        f'<Conditions NotBefore="{stamp(now)}" NotOnOrAfter="{stamp(now + lifetime)}">'
        f"<AudienceRestriction><Audience>{esc(audience)}</Audience></AudienceRestriction></Conditions>"
        f"<AttributeStatement>{attr_xml}</AttributeStatement>{authn}</Assertion>"
    )


def response(rid, inner, destination, now, in_response_to=None, status="urn:oasis:names:tc:SAML:2.0:status:Success"):
    irt = f' InResponseTo="{esc(in_response_to)}"' if in_response_to else ""
    return (
        f'<samlp:Response xmlns:samlp="{SAMLP}" ID="{rid}" Version="2.0" IssueInstant="{stamp(now)}" '
        f'Destination="{esc(destination)}"{irt}>'
        f'<Issuer xmlns="{SAML}">{esc(ISSUER)}</Issuer>'
        f'<samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status>'
        f"{inner}</samlp:Response>"
    )


def template(ref, sha="sha256"):
    sig = {"sha256": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "sha1": "http://www.w3.org/2000/09/xmldsig#rsa-sha1"}[sha]
    dig = {"sha256": "http://www.w3.org/2001/04/xmlenc#sha256", "sha1": "http://www.w3.org/2000/09/xmldsig#sha1"}[sha]
    return (
        '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>'
        '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
        f'<ds:SignatureMethod Algorithm="{sig}"/><ds:Reference URI="#{ref}"><ds:Transforms>'
        '<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
        '<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>'
        f'<ds:DigestMethod Algorithm="{dig}"/><ds:DigestValue></ds:DigestValue></ds:Reference>'
        "</ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data>"
        "<ds:X509Certificate></ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"
    )


def sign(xml, element_id, key=KEY, cert=CERT, sha="sha256", after="</Issuer>"):
    """Signs the element with ID `element_id` (its signature placed after its Issuer) with xmlsec1."""
    marker = f'ID="{element_id}"'
    at = xml.index(marker)
    issuer_end = xml.index(after, at) + len(after)
    xml = xml[:issuer_end] + template(element_id, sha) + xml[issuer_end:]
    with tempfile.TemporaryDirectory() as d:
        src, out = os.path.join(d, "in.xml"), os.path.join(d, "out.xml")
        with open(src, "w") as f:
            f.write(xml)
        # The first empty signature in document order is the one signed.
        subprocess.run(
            ["xmlsec1", "--sign", "--privkey-pem", f"{key},{cert}",
             "--id-attr:ID", f"{SAML}:Assertion", "--id-attr:ID", f"{SAMLP}:Response",
             "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor",
             "--node-xpath", f"//*[@ID='{element_id}']/*[local-name()='Signature']",
             "--output", out, src],
            check=True, capture_output=True,
        )
        with open(out) as f:
            signed = f.read()
    if signed.startswith("<?xml"):
        signed = signed[signed.index("?>") + 2:].lstrip()
    return signed


XENC = "http://www.w3.org/2001/04/xmlenc#"
DATA_ALGORITHMS = {  # name: (URI, xmlsec1 --session-key)
    "aes256-cbc": (XENC + "aes256-cbc", "aes-256"),
    "aes128-cbc": (XENC + "aes128-cbc", "aes-128"),
    "aes256-gcm": ("http://www.w3.org/2009/xmlenc11#aes256-gcm", "aes-256"),
    "tripledes-cbc": (XENC + "tripledes-cbc", "des-192"),
}


def encrypt(assertion_xml, cert=SP_CERT, data="aes256-cbc", key="rsa-oaep-mgf1p", content=False):
    """Encrypts an assertion to the SP's certificate with xmlsec1, as Entra's
    token encryption does: an EncryptedAssertion holding EncryptedData (AES)
    whose KeyInfo holds the AES key wrapped with RSA-OAEP.

    With `content`, the whole of `assertion_xml` (several elements, say) is
    encrypted as content, and the result then labelled an element, as an
    attacker would: the type is not authenticated."""
    uri, session = DATA_ALGORITHMS[data]
    kind = "Content" if content else "Element"
    digest = '<ds:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/>' if key == "rsa-oaep-mgf1p" else ""
    tmpl = (
        f'<xenc:EncryptedData xmlns:xenc="{XENC}" Type="{XENC}{kind}">'
        f'<xenc:EncryptionMethod Algorithm="{uri}"/>'
        '<ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey>'
        f'<xenc:EncryptionMethod Algorithm="{XENC}{key}">{digest}</xenc:EncryptionMethod>'
        "<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>"
        "<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>"
    )
    doc = f'<EncryptedAssertion xmlns="{SAML}">{assertion_xml}</EncryptedAssertion>'
    with tempfile.TemporaryDirectory() as d:
        paths = {n: os.path.join(d, n) for n in ("tmpl.xml", "doc.xml", "out.xml")}
        for n, text in (("tmpl.xml", tmpl), ("doc.xml", doc)):
            with open(paths[n], "w") as f:
                f.write(text)
        subprocess.run(
            ["xmlsec1", "--encrypt", "--pubkey-cert-pem", cert, "--session-key", session,
             "--xml-data", paths["doc.xml"], "--node-xpath", "/*" if content else "/*/*", "--output", paths["out.xml"], paths["tmpl.xml"]],
            check=True, capture_output=True,
        )
        with open(paths["out.xml"]) as f:
            out = f.read()
    if out.startswith("<?xml"):
        out = out[out.index("?>") + 2:].strip()
    return out.replace(f'Type="{XENC}Content"', f'Type="{XENC}Element"')


def signed_encrypted(aid, assertion_xml, context_ns=False, **kw):
    """Signs the assertion, then encrypts it.

    With `context_ns`, the assertion's namespace is declared on the
    EncryptedAssertion instead of on the assertion (signed there, so its
    digest covers the declaration as exclusive c14n renders it): the
    plaintext then uses a namespace only its context declares."""
    if not context_ns:
        return encrypt(sign(assertion_xml, aid), **kw)
    bare = assertion_xml.replace(f' xmlns="{SAML}"', "", 1)
    wrapped = sign(f'<EncryptedAssertion xmlns="{SAML}">{bare}</EncryptedAssertion>', aid)
    inner = wrapped[wrapped.index(">") + 1:wrapped.rindex("</EncryptedAssertion>")]
    return encrypt(inner, **kw)


def cert_b64(path):
    with open(path) as f:
        return "".join(l.strip() for l in f if not l.startswith("-----"))


def metadata(sso, certs=(CERT,), slo=None):
    keys = "".join(
        '<KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data>'
        f"<X509Certificate>{cert_b64(c)}</X509Certificate></X509Data></KeyInfo></KeyDescriptor>"
        for c in certs
    )
    slo_xml = f'<SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{esc(slo)}"/>' if slo else ""
    return (
        "\ufeff"
        f'<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" ID="_{uuid.uuid4().hex}" entityID="{ISSUER}">'
        f'<IDPSSODescriptor protocolSupportEnumeration="{SAMLP}">{keys}{slo_xml}'
        f'<SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{esc(sso)}"/>'
        "</IDPSSODescriptor></EntityDescriptor>"
    )


def signed_response(user, audience, acs, now, in_response_to=None, encrypt_to=None, **kw):
    aid, rid = f"_{uuid.uuid4().hex}", f"_{uuid.uuid4().hex}"
    a = sign(assertion(aid, user, audience, acs, now, in_response_to, **kw), aid)
    if encrypt_to:
        a = encrypt(a, cert=encrypt_to)
    return response(rid, a, acs, now, in_response_to)


# --- the server ---------------------------------------------------------------


LOGOUTS = []  # the LogoutRequests and LogoutResponses received, for the tests to read
SESSIONS = {}  # user -> the SessionIndex of their latest assertion


def redirect_query(param, xml, relay=None, key=None):
    """A message by the HTTP-Redirect binding: DEFLATE, base64, and the
    query's signature (RSA-SHA256) with `key`."""
    from urllib.parse import quote
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = base64.b64encode(c.compress(xml.encode()) + c.flush()).decode()
    query = f"{param}={quote(data, safe='')}"
    if relay is not None:
        query += f"&RelayState={quote(relay, safe='')}"
    if key:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding
        query += "&SigAlg=" + quote("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", safe="")
        with open(key, "rb") as f:
            k = serialization.load_pem_private_key(f.read(), None)
        sig = k.sign(query.encode(), padding.PKCS1v15(), hashes.SHA256())
        query += "&Signature=" + quote(base64.b64encode(sig).decode(), safe="")
    return query


def signature_ok(raw_query, cert_path):
    """Checks an HTTP-Redirect binding signature over the query as sent."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from urllib.parse import unquote

    parts = dict(p.split("=", 1) for p in raw_query.split("&") if "=" in p)
    if "Signature" not in parts or unquote(parts.get("SigAlg", "")) != "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256":
        return False
    signed = "&".join(f"{k}={parts[k]}" for k in ("SAMLRequest", "RelayState", "SigAlg") if k in parts)
    with open(cert_path, "rb") as f:
        key = x509.load_pem_x509_certificate(f.read()).public_key()
    try:
        key.verify(base64.b64decode(unquote(parts["Signature"])), signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        return True
    except Exception:
        return False


class Idp(BaseHTTPRequestHandler):
    base = ""
    sp_cert = None
    encrypt_to = None

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="text/html"):
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def post_form(self, acs, saml_response, relay):
        b64 = base64.b64encode(saml_response.encode()).decode()
        relay_input = f'<input type="hidden" name="RelayState" value="{esc(relay)}"/>' if relay is not None else ""
        self.reply(200, (
            f'<html><body onload="document.forms[0].submit()"><form method="post" action="{esc(acs)}">'
            f'<input type="hidden" name="SAMLResponse" value="{b64}"/>{relay_input}'
            "<noscript><button>Continue</button></noscript></form></body></html>"
        ))

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/metadata":
            return self.reply(200, metadata(f"{self.base}/sso", slo=f"{self.base}/slo"), "application/xml")
        if url.path == "/sso":
            from saml2 import samlp
            if self.sp_cert and not signature_ok(url.query, self.sp_cert):
                # Entra: AADSTS900000-style refusal of an unsigned or badly signed request.
                return self.reply(403, "<html><body>the AuthnRequest is not signed with the registered certificate</body></html>")
            xml = zlib.decompress(base64.b64decode(q["SAMLRequest"]), -15).decode()
            req = samlp.authn_request_from_string(xml)
            user = q.get("login_hint")
            if user not in USERS:
                return self.reply(200, "<html><body>who are you? (login_hint)</body></html>")
            resp = signed_response(user, req.issuer.text, req.assertion_consumer_service_url, int(time.time()), req.id,
                                   encrypt_to=self.encrypt_to)
            return self.post_form(req.assertion_consumer_service_url, resp, q.get("RelayState"))
        if url.path == "/slo" and "SAMLResponse" in q:
            # The SP's answer to a LogoutRequest this IdP sent.
            xml = zlib.decompress(base64.b64decode(q["SAMLResponse"]), -15).decode()
            from saml2 import samlp
            res = samlp.logout_response_from_string(xml)
            LOGOUTS.append({"response": res.status.status_code.value, "in_response_to": res.in_response_to,
                            "relay": q.get("RelayState"), "signed": "Signature" in q})
            return self.reply(200, "<html><body>signed out at the IdP</body></html>")
        if url.path == "/logout-initiate":
            # Logout started here (the user signed out of Entra): a
            # LogoutRequest to the SP's logout URL, by redirect; signed with
            # this IdP's key unless `sign=0`, or with the attacker's
            # (`sign=attacker`); naming the user's latest SessionIndex when
            # `session_index=1`.
            rid = f"_{uuid.uuid4().hex}"
            index = f"<samlp:SessionIndex>{esc(SESSIONS.get(q['user'], ''))}</samlp:SessionIndex>" if q.get("session_index") == "1" else ""
            xml = (
                f'<samlp:LogoutRequest xmlns:samlp="{SAMLP}" ID="{rid}" Version="2.0" '
                f'IssueInstant="{stamp(int(time.time()))}" Destination="{esc(q["sp_slo"])}">'
                f'<Issuer xmlns="{SAML}">https://login.microsoftonline.com/{TENANT}/</Issuer>'
                f'<NameID xmlns="{SAML}" Format="{EMAIL_FORMAT}">{esc(q["user"])}</NameID>{index}'
                "</samlp:LogoutRequest>"
            )
            key = {"0": None, "attacker": ATTACKER_KEY}.get(q.get("sign", "1"), KEY)
            self.send_response(302)
            self.send_header("location", f"{q['sp_slo']}?{redirect_query('SAMLRequest', xml, q.get('relay'), key)}")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if url.path == "/slo":
            # Single logout: the SP's LogoutRequest, read with pysaml2, is
            # answered at the SP's SLO URL (its entity ID + "/slo", as the
            # SP's metadata says) with a LogoutResponse by redirect.
            from saml2 import samlp
            xml = zlib.decompress(base64.b64decode(q["SAMLRequest"]), -15).decode()
            req = samlp.logout_request_from_string(xml)
            if not req.name_id or not req.name_id.text:
                return self.reply(400, "no NameID")
            LOGOUTS.append({"name_id": req.name_id.text, "session_index": [s.text for s in req.session_index]})
            answer = (
                f'<samlp:LogoutResponse xmlns:samlp="{SAMLP}" ID="_{uuid.uuid4().hex}" Version="2.0" '
                f'IssueInstant="{stamp(int(time.time()))}" InResponseTo="{esc(req.id)}">'
                f'<Issuer xmlns="{SAML}">https://login.microsoftonline.com/{TENANT}/</Issuer>'
                f'<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
                "</samlp:LogoutResponse>"
            )
            location = f"{req.issuer.text}/slo?{redirect_query('SAMLResponse', answer, q.get('RelayState', ''))}"
            self.send_response(302)
            self.send_header("location", location)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if url.path == "/logouts":
            return self.reply(200, json.dumps(LOGOUTS), "application/json")
        if url.path == "/initiate":
            resp = signed_response(q["user"], q["audience"], q["acs"], int(time.time()), encrypt_to=self.encrypt_to)
            return self.post_form(q["acs"], resp, q.get("relay"))
        self.reply(404, "not found")


def serve(port, sp_cert=None, encrypt_to=None):
    Idp.sp_cert = sp_cert
    Idp.encrypt_to = encrypt_to
    server = ThreadingHTTPServer(("127.0.0.1", port), Idp)
    Idp.base = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"ready": True, "base": Idp.base}), flush=True)
    sys.stdin.read()


# --- the attack corpus --------------------------------------------------------

SP = "https://app.example.test/ngrok/saml"
ACS = "https://app.example.test/ngrok/saml/acs"
NOW = 1796644800  # 2026-12-07T12:00:00Z
REQ = "_req0001"


def corpus(out):
    os.makedirs(out, exist_ok=True)
    cases = []

    def case(name, xml, expect, check="", now=NOW, request_id=REQ, idp_initiated=False):
        with open(os.path.join(out, f"{name}.xml"), "w") as f:
            f.write(xml)
        cases.append({"file": f"{name}.xml", "expect": expect, "check": check, "now": now,
                      "request_id": request_id, "allow_idp_initiated": idp_initiated})

    with open(os.path.join(out, "metadata.xml"), "w") as f:
        f.write(metadata("https://login.example.test/saml2", certs=(NEXT_CERT, CERT)))
    # Metadata signed as Entra signs its federation metadata, and the same
    # with its SSO URL changed afterwards.
    md = metadata("https://login.example.test/saml2").lstrip("\ufeff").replace('ID="_', 'ID="_md', 1)
    md_id = md.split('ID="', 1)[1].split('"', 1)[0]
    signed_md = sign(md, md_id, after='entityID="' + ISSUER + '">')
    with open(os.path.join(out, "metadata-signed.xml"), "w") as f:
        f.write(signed_md)
    with open(os.path.join(out, "metadata-signed-tampered.xml"), "w") as f:
        f.write(signed_md.replace("https://login.example.test/saml2", "https://evil.example.test/saml2"))

    def good_assertion(aid="_a1", **kw):
        return assertion(aid, "alice@contoso.test", SP, ACS, NOW, REQ, **kw)

    signed_a = sign(good_assertion(), "_a1")
    case("ok-assertion-signed", response("_r1", signed_a, ACS, NOW, REQ), "ok")
    case("ok-response-signed", sign(response("_r1", good_assertion(), ACS, NOW, REQ), "_r1"), "ok")
    case("ok-both-signed", sign(response("_r1", signed_a, ACS, NOW, REQ), "_r1"), "ok")
    case("ok-next-certificate", response("_r1", sign(good_assertion(), "_a1", NEXT_KEY, NEXT_CERT), ACS, NOW, REQ), "ok")
    case("ok-idp-initiated", response("_r1", sign(assertion("_a1", "alice@contoso.test", SP, ACS, NOW), "_a1"), ACS, NOW),
         "ok", request_id=None, idp_initiated=True)

    # Signature wrapping: the signed assertion kept, an evil one read instead.
    evil = assertion("_evil", "bob@contoso.test", SP, ACS, NOW, REQ, name_id="admin@contoso.test")
    case("xsw-evil-sibling-after", response("_r1", signed_a + evil, ACS, NOW, REQ), "ERR_NGROK_5301", "assertions")
    case("xsw-evil-sibling-before", response("_r1", evil + signed_a, ACS, NOW, REQ), "ERR_NGROK_5301", "assertions")
    wrapped = evil.replace("<Subject>", f"<Subject><Extensions>{signed_a}</Extensions>", 1)
    case("xsw-signed-inside-evil", response("_r1", wrapped, ACS, NOW, REQ), "ERR_NGROK_5301", "assertions")
    ext = f'<samlp:Extensions>{signed_a}</samlp:Extensions>'
    r = response("_r1", evil, ACS, NOW, REQ).replace("<samlp:Status>", ext + "<samlp:Status>", 1)
    case("xsw-signed-in-extensions", r, "ERR_NGROK_5301", "assertions")
    # The evil assertion takes the signed one's ID; the signature is moved onto it.
    sig_start = signed_a.index("<ds:Signature")
    sig_end = signed_a.index("</ds:Signature>") + len("</ds:Signature>")
    signature = signed_a[sig_start:sig_end]
    stolen = assertion("_a1", "bob@contoso.test", SP, ACS, NOW, REQ, name_id="admin@contoso.test")
    stolen = stolen.replace("</Issuer>", "</Issuer>" + signature, 1)
    case("xsw-signature-moved", response("_r1", stolen, ACS, NOW, REQ), "ERR_NGROK_5301", "digest")
    # The response signature references the assertion, not the response.
    resp_sig = sign(response("_r1", good_assertion(), ACS, NOW, REQ), "_r1").replace('URI="#_r1"', 'URI="#_a1"')
    case("reference-to-another-element", resp_sig, "ERR_NGROK_5301", "reference")
    # Two references in one signature.
    two_refs = signed_a.replace("</ds:SignedInfo>", signed_a[signed_a.index("<ds:Reference"):signed_a.index("</ds:Reference>") + 15] + "</ds:SignedInfo>", 1)
    case("two-references", response("_r1", two_refs, ACS, NOW, REQ), "ERR_NGROK_5301", "reference")
    # Comment truncation: the signature still verifies over the text without the comment.
    commented = signed_a.replace(">alice@contoso.test</NameID>", ">alice@contoso.test<!---->.evil.test</NameID>", 1)
    case("comment-in-name-id", response("_r1", commented, ACS, NOW, REQ), "ERR_NGROK_5301", "comments")
    # A key of the attacker's own, shipped in KeyInfo.
    case("keyinfo-attacker-key", response("_r1", sign(good_assertion(), "_a1", ATTACKER_KEY, ATTACKER_CERT), ACS, NOW, REQ),
         "ERR_NGROK_5301", "does not verify")
    case("unsigned", response("_r1", good_assertion(), ACS, NOW, REQ), "ERR_NGROK_5301", "signed")
    # A signed value changed after signing, in the assertion and in a signed response.
    tampered = signed_a.replace("<AttributeValue>alice@contoso.test</AttributeValue>", "<AttributeValue>ceo@contoso.test</AttributeValue>", 1)
    case("tampered-attribute", response("_r1", tampered, ACS, NOW, REQ), "ERR_NGROK_5301", "digest")
    tampered_resp = sign(response("_r1", good_assertion(), ACS, NOW, REQ), "_r1").replace(">alice@contoso.test</NameID>", ">ceo@contoso.test</NameID>", 1)
    case("tampered-in-signed-response", tampered_resp, "ERR_NGROK_5301", "digest")
    # An unsigned assertion added to a signed response, after signing.
    signed_resp = sign(response("_r1", good_assertion(), ACS, NOW, REQ), "_r1")
    case("unsigned-assertion-added", signed_resp.replace("</samlp:Response>", evil + "</samlp:Response>"), "ERR_NGROK_5301", "assertions")
    case("sha1", response("_r1", sign(good_assertion(), "_a1", sha="sha1"), ACS, NOW, REQ), "ERR_NGROK_5301", "not accepted")
    case("wrong-audience", response("_r1", sign(assertion("_a1", "alice@contoso.test", "https://other.test/saml", ACS, NOW, REQ), "_a1"), ACS, NOW, REQ),
         "ERR_NGROK_5301", "audience")
    case("wrong-destination", response("_r1", signed_a, "https://other.test/acs", NOW, REQ), "ERR_NGROK_5301", "Destination")
    case("wrong-recipient", response("_r1", sign(assertion("_a1", "alice@contoso.test", SP, "https://other.test/acs", NOW, REQ), "_a1"), ACS, NOW, REQ),
         "ERR_NGROK_5301", "Recipient")
    case("wrong-issuer", response("_r1", sign(good_assertion(issuer="https://sts.windows.net/00000000-0000-0000-0000-000000000000/"), "_a1"), ACS, NOW, REQ),
         "ERR_NGROK_5301", "Issuer")
    case("expired", response("_r1", signed_a, ACS, NOW, REQ), "ERR_NGROK_5301", "expired", now=NOW + 3600)
    case("not-yet-valid", response("_r1", signed_a, ACS, NOW, REQ), "ERR_NGROK_5301", "not valid yet", now=NOW - 3600)
    case("in-response-to-mismatch", response("_r1", signed_a, ACS, NOW, REQ), "ERR_NGROK_5301", "InResponseTo", request_id="_other")
    case("idp-initiated-refused", response("_r1", sign(assertion("_a1", "alice@contoso.test", SP, ACS, NOW), "_a1"), ACS, NOW),
         "ERR_NGROK_5302", "IdP-initiated", request_id=None)
    case("two-authn-statements", response("_r1", sign(good_assertion(authn_statements=2), "_a1"), ACS, NOW, REQ), "ERR_NGROK_5311", "authentication statements")
    case("status-not-success", response("_r1", signed_a, ACS, NOW, REQ, status="urn:oasis:names:tc:SAML:2.0:status:Requester"), "ERR_NGROK_5301", "IdP answered")
    case("doctype-entity", '<!DOCTYPE r [<!ENTITY x "alice@contoso.test">]>' + response("_r1", signed_a, ACS, NOW, REQ), "ERR_NGROK_5301", "XML")
    case("duplicate-ids", response("_a1", signed_a, ACS, NOW, REQ), "ERR_NGROK_5301", "twice")
    encrypted = f'<EncryptedAssertion xmlns="{SAML}"><EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#"/></EncryptedAssertion>'
    case("encrypted-beside-plain", response("_r1", signed_a + encrypted, ACS, NOW, REQ), "ERR_NGROK_5301", "encrypted")
    case("oversized", response("_r1", signed_a.replace("</Issuer>", "</Issuer>" + " " * (300 * 1024), 1), ACS, NOW, REQ), "ERR_NGROK_5301", "larger")
    # Encrypted assertions (Entra's token encryption), to the SP's key.
    def enc_case(name, encrypted_assertion, expect, check="", signed_response=False):
        r = response("_r1", encrypted_assertion, ACS, NOW, REQ)
        case(name, sign(r, "_r1") if signed_response else r, expect, check)

    enc_case("ok-encrypted-aes256-cbc", signed_encrypted("_a1", good_assertion()), "ok")
    enc_case("ok-encrypted-aes256-gcm", signed_encrypted("_a1", good_assertion(), data="aes256-gcm"), "ok")
    enc_case("ok-encrypted-namespace-from-context", signed_encrypted("_a1", good_assertion(), context_ns=True), "ok")
    enc_case("ok-encrypted-in-signed-response", encrypt(good_assertion()), "ok", signed_response=True)
    # Anyone can encrypt to the SP's certificate: unsigned, it is refused.
    enc_case("encrypted-unsigned", encrypt(good_assertion()), "ERR_NGROK_5301", "signed")
    enc_case("encrypted-attacker-key", encrypt(sign(good_assertion(), "_a1", ATTACKER_KEY, ATTACKER_CERT)),
             "ERR_NGROK_5301", "does not verify")
    enc_case("encrypted-to-another-key", signed_encrypted("_a1", good_assertion(), cert=ATTACKER_CERT),
             "ERR_NGROK_5301", "cannot be decrypted")
    enc_case("encrypted-rsa-1_5", signed_encrypted("_a1", good_assertion(), key="rsa-1_5"), "ERR_NGROK_5301", "PKCS#1 v1.5")
    enc_case("encrypted-tripledes", signed_encrypted("_a1", good_assertion(), data="tripledes-cbc"), "ERR_NGROK_5301", "not AES")
    # The ciphertext changed: CBC's malleability ends in one message.
    good_enc = signed_encrypted("_a1", good_assertion())
    values = good_enc.split("<xenc:CipherValue>")
    last = values[-1]
    flipped = last[:40] + ("A" if last[40] != "A" else "B") + last[41:]
    enc_case("encrypted-ciphertext-tampered", "<xenc:CipherValue>".join(values[:-1] + [flipped]), "ERR_NGROK_5301", "cannot be decrypted")
    # Signature wrapping inside the encryption: an evil assertion beside the signed one.
    enc_case("encrypted-xsw-two-assertions", encrypt(signed_a + evil, content=True), "ERR_NGROK_5301", "cannot be decrypted")
    # A signed response whose encrypted assertion was swapped for the attacker's.
    swapped = sign(response("_r1", encrypt(good_assertion()), ACS, NOW, REQ), "_r1")
    start = swapped.index("<EncryptedAssertion")
    end = swapped.index("</EncryptedAssertion>") + len("</EncryptedAssertion>")
    swapped = swapped[:start] + encrypt(evil) + swapped[end:]
    case("encrypted-swapped-in-signed-response", swapped, "ERR_NGROK_5301", "digest")
    with open(os.path.join(out, "sp-key.pem"), "w") as f, open(SP_KEY) as k:
        f.write(k.read())
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"sp": SP, "acs": ACS, "cases": cases}, f, indent=1)
    print(f"{len(cases)} cases in {out}")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "corpus":
        corpus(sys.argv[2])
    elif len(sys.argv) >= 2 and sys.argv[1] == "serve":
        port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
        sp_cert = sys.argv[sys.argv.index("--sp-cert") + 1] if "--sp-cert" in sys.argv else None
        encrypt_to = sys.argv[sys.argv.index("--encrypt-to") + 1] if "--encrypt-to" in sys.argv else None
        serve(port, sp_cert, encrypt_to)
    else:
        print(__doc__)
        sys.exit(2)
