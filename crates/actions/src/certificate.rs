//! An X.509 certificate as policies read it: `conn.tls.client.*` (the
//! client certificate of mutual TLS) and the `terminate-tls` results.
//! Parsed once, when the handshake ends, into the values each variable
//! reads, so that a condition costs a lookup, not a parse.
//!
//! Distinguished names are written as RFC 2253 says (and as Go's
//! `pkix.Name.String`, which ngrok's values come from, writes them): the
//! last RDN first, `CN=…,O=…`, with `,+"\<>;` escaped.

use base64::Engine as _;
use portcullis_cel::Value;
use portcullis_cel::time::Timestamp;
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate, X509Name};

/// The variables of a certificate, after the `conn.tls.client.` prefix.
pub const FIELDS: [&str; 29] = [
    "pem",
    "extensions",
    "issuer",
    "issuer.common_name",
    "issuer.country",
    "issuer.locality",
    "issuer.organization",
    "issuer.organizational_unit",
    "issuer.postal_code",
    "issuer.province",
    "issuer.street_address",
    "san",
    "san.dns_names",
    "san.email_addresses",
    "san.ip_addresses",
    "san.uris",
    "serial_number",
    "signature_algorithm",
    "subject",
    "subject.common_name",
    "subject.country",
    "subject.locality",
    "subject.organization",
    "subject.organizational_unit",
    "subject.postal_code",
    "subject.province",
    "subject.street_address",
    "validity.not_after",
    "validity.not_before",
];

/// A certificate's variables, in [`FIELDS`] order.
#[derive(Debug)]
pub struct Certificate {
    values: Vec<Value<'static>>,
}

impl Certificate {
    /// Reads a DER certificate; `None` if it is not one.
    pub fn from_der(der: &[u8]) -> Option<Certificate> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let strings = |v: Vec<String>| Value::list(v.into_iter().map(Value::string).collect());
        let name_fields = |n: &X509Name<'_>| {
            use x509_parser::oid_registry as oid;
            let by = |o: &oid::Oid<'_>| -> Vec<String> {
                n.iter_by_oid(o)
                    .filter_map(|a| a.as_str().ok().map(str::to_owned))
                    .collect()
            };
            vec![
                Value::string(rfc2253(n)),
                Value::string(
                    by(&oid::OID_X509_COMMON_NAME)
                        .into_iter()
                        .next()
                        .unwrap_or_default(),
                ),
                strings(by(&oid::OID_X509_COUNTRY_NAME)),
                strings(by(&oid::OID_X509_LOCALITY_NAME)),
                strings(by(&oid::OID_X509_ORGANIZATION_NAME)),
                strings(by(&oid::OID_X509_ORGANIZATIONAL_UNIT)),
                strings(by(&oid::OID_X509_POSTAL_CODE)),
                strings(by(&oid::OID_X509_STATE_OR_PROVINCE_NAME)),
                strings(by(&oid::OID_X509_STREET_ADDRESS)),
            ]
        };
        let (mut dns, mut emails, mut ips, mut uris) = (vec![], vec![], vec![], vec![]);
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                    GeneralName::RFC822Name(e) => emails.push((*e).to_owned()),
                    GeneralName::URI(u) => uris.push((*u).to_owned()),
                    GeneralName::IPAddress(b) => {
                        if let Some(ip) = ip_text(b) {
                            ips.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        let san_text = dns
            .iter()
            .map(|d| format!("DNS:{d}"))
            .chain(emails.iter().map(|e| format!("email:{e}")))
            .chain(ips.iter().map(|i| format!("IP:{i}")))
            .chain(uris.iter().map(|u| format!("URI:{u}")))
            .collect::<Vec<_>>()
            .join(", ");
        let extensions = cert
            .extensions()
            .iter()
            .map(|e| {
                crate::record::record(vec![
                    ("id", Value::string(e.oid.to_id_string())),
                    ("critical", Value::Bool(e.critical)),
                    (
                        "value",
                        Value::Bytes(portcullis_cel::value::Bin::Shared(std::sync::Arc::from(
                            e.value,
                        ))),
                    ),
                ])
            })
            .collect();
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::engine::general_purpose::STANDARD
                .encode(der)
                .as_bytes()
                .chunks(64)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("\n")
        );
        let time = |t: x509_parser::time::ASN1Time| {
            Timestamp::new(t.timestamp(), 0).map_or(Value::Null, Value::Timestamp)
        };
        let mut values = vec![Value::string(pem), Value::list(extensions)];
        values.extend(name_fields(cert.issuer()));
        values.extend([
            Value::string(san_text),
            strings(dns),
            strings(emails),
            strings(ips),
            strings(uris),
            Value::string(
                cert.raw_serial_as_string()
                    .replace(':', "")
                    .to_ascii_uppercase(),
            ),
            Value::string(signature_algorithm(&cert)),
        ]);
        values.extend(name_fields(cert.subject()));
        values.push(time(cert.validity().not_after));
        values.push(time(cert.validity().not_before));
        debug_assert_eq!(values.len(), FIELDS.len());
        Some(Certificate { values })
    }

    /// The value of `FIELDS[i]`.
    pub fn field(&self, i: usize) -> Option<&Value<'static>> {
        self.values.get(i)
    }

    /// The value of the variable suffix `name` (`subject.common_name`).
    pub fn get(&self, name: &str) -> Option<&Value<'static>> {
        FIELDS
            .iter()
            .position(|f| *f == name)
            .and_then(|i| self.field(i))
    }
}

/// `n` as RFC 2253 writes it: the last RDN first.
fn rfc2253(n: &X509Name<'_>) -> String {
    use x509_parser::oid_registry as oid;
    let short = |o: &oid::Oid<'_>| -> String {
        match o {
            o if *o == oid::OID_X509_COMMON_NAME => "CN".into(),
            o if *o == oid::OID_X509_COUNTRY_NAME => "C".into(),
            o if *o == oid::OID_X509_LOCALITY_NAME => "L".into(),
            o if *o == oid::OID_X509_STATE_OR_PROVINCE_NAME => "ST".into(),
            o if *o == oid::OID_X509_ORGANIZATION_NAME => "O".into(),
            o if *o == oid::OID_X509_ORGANIZATIONAL_UNIT => "OU".into(),
            o if *o == oid::OID_X509_STREET_ADDRESS => "STREET".into(),
            o if *o == oid::OID_X509_POSTAL_CODE => "POSTALCODE".into(),
            o if *o == oid::OID_X509_SERIALNUMBER => "SERIALNUMBER".into(),
            other => other.to_id_string(),
        }
    };
    let escape = |v: &str| {
        let mut out = String::with_capacity(v.len());
        // Counted once: a client's certificate chooses the value's length.
        let last = v.chars().count().saturating_sub(1);
        for (i, c) in v.chars().enumerate() {
            let edge = (i == 0 && (c == ' ' || c == '#')) || (i == last && c == ' ');
            if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    };
    let rdns: Vec<String> = n
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|a| {
                    let value = a
                        .as_str()
                        .map_or_else(|_| format!("#{}", hex(a.attr_value().data)), &escape);
                    format!("{}={value}", short(a.attr_type()))
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn ip_text(b: &[u8]) -> Option<String> {
    match b.len() {
        4 => Some(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
        16 => {
            let octets: [u8; 16] = b.try_into().ok()?;
            Some(std::net::Ipv6Addr::from(octets).to_string())
        }
        _ => None,
    }
}

/// The signature algorithm by Go's names (`SHA256-RSA`, `ECDSA-SHA256`).
fn signature_algorithm(cert: &X509Certificate<'_>) -> String {
    use x509_parser::oid_registry as oid;
    let alg = &cert.signature_algorithm.algorithm;
    let known: [(&oid::Oid<'_>, &str); 8] = [
        (&oid::OID_PKCS1_SHA256WITHRSA, "SHA256-RSA"),
        (&oid::OID_PKCS1_SHA384WITHRSA, "SHA384-RSA"),
        (&oid::OID_PKCS1_SHA512WITHRSA, "SHA512-RSA"),
        (&oid::OID_PKCS1_SHA1WITHRSA, "SHA1-RSA"),
        (&oid::OID_SIG_ECDSA_WITH_SHA256, "ECDSA-SHA256"),
        (&oid::OID_SIG_ECDSA_WITH_SHA384, "ECDSA-SHA384"),
        (&oid::OID_SIG_ECDSA_WITH_SHA512, "ECDSA-SHA512"),
        (&oid::OID_SIG_ED25519, "Ed25519"),
    ];
    known
        .iter()
        .find(|(o, _)| *o == alg)
        .map_or_else(|| alg.to_id_string(), |(_, n)| (*n).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_certificate_reads_as_ngrok_names_it() {
        let mut params =
            rcgen::CertificateParams::new(vec!["alice.example.com".into()]).expect("params");
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Example Corp");
        dn.push(rcgen::DnType::OrganizationalUnitName, "Eng, Platform");
        dn.push(rcgen::DnType::CommonName, "alice");
        params.distinguished_name = dn;
        params.subject_alt_names.push(rcgen::SanType::Rfc822Name(
            "alice@example.com".try_into().expect("email"),
        ));
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("10.0.0.7".parse().expect("ip")));
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let c = Certificate::from_der(cert.der()).expect("parses");
        let s = |name: &str| match c.get(name) {
            Some(Value::String(s)) => s.to_string(),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(
            s("subject"),
            "CN=alice,OU=Eng\\, Platform,O=Example Corp,C=US"
        );
        assert_eq!(s("subject.common_name"), "alice");
        assert_eq!(s("signature_algorithm"), "ECDSA-SHA256");
        assert!(s("pem").starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert_eq!(
            s("san"),
            "DNS:alice.example.com, email:alice@example.com, IP:10.0.0.7"
        );
        let list = |name: &str| format!("{:?}", c.get(name).expect(name));
        assert!(list("subject.organization").contains("Example Corp"));
        assert!(list("san.ip_addresses").contains("10.0.0.7"));
        assert!(matches!(
            c.get("validity.not_after"),
            Some(Value::Timestamp(_))
        ));
        assert!(Certificate::from_der(b"not a certificate").is_none());
    }
}
