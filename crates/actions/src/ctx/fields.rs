//! Each variable's value, read from the exchange when an expression asks.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::{self, HeaderMap};
use portcullis_cel::time::Timestamp;
use portcullis_cel::value::{Key, MapData};
use portcullis_cel::{Map, Str, Value};

use super::{Headers, RequestCtx, borrow, first_value, headers_value, list_of_header, text};
use crate::env::Field;
use crate::record::{self, key, map};

impl RequestCtx {
    /// The value of `field`, borrowing from the exchange where it can.
    /// The variables most rules read are answered here, the rest by
    /// `other_field`, out of line, so that this stays small: it runs for
    /// every variable a condition reads.
    #[inline(always)]
    pub(super) fn field(&self, field: Field) -> Option<Value<'_>> {
        use Field::*;
        Some(match field {
            UrlPath => text(self.req.uri.path()),
            ReqMethod => text(self.req.method.as_str()),
            ReqHeaders => headers_value(&self.req_headers),
            ConnClientIp => text(&self.conn.client_ip),
            Result(i) => {
                let (_, v) = self.results.iter().find(|(j, _)| *j == i)?;
                borrow(v)
            }
            other => return self.other_field(other),
        })
    }

    /// The results set under `prefix`, as nested maps; `None` when the
    /// action set none.
    fn result_object(&self, prefix: &str) -> Option<Value<'static>> {
        let names = portcullis_policy::schema::variables();
        let mut leaves: Vec<(Vec<&str>, Value<'static>)> = Vec::new();
        for (i, value) in &self.results {
            let Some(var) = names.get(usize::from(*i)) else {
                continue;
            };
            if let Some(rest) = var
                .name
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('.'))
            {
                leaves.push((rest.split('.').collect(), value.clone()));
            }
        }
        if leaves.is_empty() {
            return None;
        }
        Some(nest(&leaves, 0))
    }

    /// `vars` as a map, built on first read in a phase.
    fn vars_map(&self) -> Value<'static> {
        let entries = self
            .vars
            .iter()
            .map(|(k, v)| (Key::String(Str::Shared(Arc::from(k.as_str()))), v.clone()))
            .collect();
        MapData::from_entries(entries)
            .map(|m| Value::Map(Map::Values(Arc::new(m))))
            .unwrap_or(Value::Null)
    }

    #[inline(never)]
    fn other_field(&self, field: Field) -> Option<Value<'_>> {
        use Field::*;
        let conn = &*self.conn;
        let ep = &*self.endpoint;
        Some(match field {
            UrlPath | ReqMethod | ReqHeaders | ConnClientIp | Result(_) => {
                return self.field(field);
            }
            ReqHost | UrlAuthority => text(self.authority()),
            UrlHost => text(host_of(self.authority())),
            UrlPort => Value::Int(port_of(self.authority(), self.scheme())?),
            UrlQuery => text(self.req.uri.query().unwrap_or("")),
            UrlQueryParams => Value::Map(Map::Multi(self.query_params())),
            ReqUrl => text(self.url()),
            UrlRaw => text(self.raw_url()),
            UrlRawPath => text(self.raw_path()),
            UrlScheme => text(self.scheme()),
            UrlUri => text(self.req.uri.path_and_query().map_or("/", |p| p.as_str())),
            UrlUserPassword => text(""),
            UserAgent => text(header_str(&self.req_headers.0, header::USER_AGENT)?),
            UserAgentPart(i) => {
                let agent = self
                    .req_cache
                    .user_agent
                    .get_or_init(|| {
                        let ua = header_str(&self.req_headers.0, header::USER_AGENT).unwrap_or("");
                        crate::user_agent::parse(ua)
                    })
                    .as_ref()?;
                match i {
                    0 => text(&agent.name),
                    1 => text(&agent.version),
                    2 => text(&agent.os),
                    3 => text(&agent.os_version),
                    4 => text(&agent.device),
                    5 => Value::Bool(agent.is_bot),
                    6 => Value::Bool(agent.is_mobile),
                    7 => Value::Bool(agent.is_tablet),
                    8 => Value::Bool(agent.is_desktop),
                    _ => text(&agent.url),
                }
            }
            ReqVersion => text(version(self.req.version)),
            ReqContentEncoding => list_of_header(&self.req_headers, "content-encoding"),
            // A request that announces no body has none: 0, so that
            // `req.content_length > N` holds for GETs too. A streamed
            // (chunked) body has no length yet: absent.
            ReqContentLength => match content_length(&self.req_headers.0) {
                Some(n) => n,
                None if self.req_headers.0.contains_key(header::TRANSFER_ENCODING) => return None,
                None => Value::Int(0),
            },
            // Strings of headers the request may lack are `""` (and the
            // parameters `{}`) then, as ngrok documents them: a rule reading
            // one does not fail on a GET without a body.
            ReqContentType => text(media_type(&self.req_headers.0).unwrap_or("")),
            ReqContentTypeRaw => {
                text(header_str(&self.req_headers.0, header::CONTENT_TYPE).unwrap_or(""))
            }
            ReqContentTypeParams => content_type_params(&self.req_headers.0),
            ReqCookies => self
                .req_cache
                .cookies
                .get_or_init(|| request_cookies(&self.req_headers.0))
                .clone(),
            ReqLocation => text(header_str(&self.req_headers.0, header::LOCATION).unwrap_or("")),
            ReqTrailers => record::empty(),
            ReqTsHeaderReceived => Value::Timestamp(timestamp(self.received())),
            ResStatusCode => Value::Int(i64::from(self.res.as_ref()?.parts.status.as_u16())),
            ResHeaders => headers_value(&self.res.as_ref()?.headers),
            ResContentEncoding => list_of_header(&self.res.as_ref()?.headers, "content-encoding"),
            ResContentLength => content_length(&self.res.as_ref()?.headers.0)?,
            ResContentType => text(media_type(&self.res.as_ref()?.headers.0).unwrap_or("")),
            ResContentTypeRaw => {
                text(header_str(&self.res.as_ref()?.headers.0, header::CONTENT_TYPE).unwrap_or(""))
            }
            ResContentTypeParams => content_type_params(&self.res.as_ref()?.headers.0),
            ResLocation => {
                text(header_str(&self.res.as_ref()?.headers.0, header::LOCATION).unwrap_or(""))
            }
            ResCookies => {
                let res = self.res.as_ref()?;
                self.res_cache
                    .cookies
                    .get_or_init(|| response_cookies(&res.headers))
                    .clone()
            }
            ResTrailers => record::empty(),
            ConnClientPort => Value::Int(i64::from(conn.client.port())),
            ConnBytesIn => Value::Int(i64::try_from(conn.bytes(false)?).unwrap_or(i64::MAX)),
            ConnBytesOut => Value::Int(i64::try_from(conn.bytes(true)?).unwrap_or(i64::MAX)),
            ConnServerIp => text(&conn.server_ip),
            ConnServerPort => Value::Int(i64::from(conn.server.port())),
            ConnTsStart => Value::Timestamp(timestamp(conn.started)),
            ConnTlsVersion => text(&conn.tls.as_ref()?.version),
            ConnTlsCipherSuite => text(&conn.tls.as_ref()?.cipher_suite),
            ConnTlsSni => text(conn.tls.as_ref()?.sni.as_deref().unwrap_or("")),
            ConnTlsAlpn => text(conn.tls.as_ref()?.alpn.as_deref().unwrap_or("")),
            ConnTlsSessionResumed => Value::Bool(false),
            ConnTlsClient(i) => borrow(conn.tls.as_ref()?.client.as_ref()?.field(usize::from(i))?),
            ConnTlsServer(i) => borrow(conn.tls.as_ref()?.server.as_ref()?.field(usize::from(i))?),
            Intel(server, fact) => {
                let facts = conn.ip_facts(ep.ip_intel.as_deref()?, server);
                intel_value(facts, fact)?
            }
            TerminateTls(i) => {
                let tls = conn.tls.as_ref().filter(|t| t.by_policy)?;
                match i {
                    0 => text(&tls.version),
                    1 => text(&tls.cipher_suite),
                    _ => text(tls.sni.as_deref().unwrap_or("")),
                }
            }
            TerminateTlsClient(i) => borrow(
                conn.tls
                    .as_ref()
                    .filter(|t| t.by_policy)?
                    .client
                    .as_ref()?
                    .field(usize::from(i))?,
            ),
            TerminateTlsServer(i) => borrow(
                conn.tls
                    .as_ref()
                    .filter(|t| t.by_policy)?
                    .server
                    .as_ref()?
                    .field(usize::from(i))?,
            ),
            EndpointAddr => Value::string(ep.addr()),
            EndpointHost => text(&ep.host),
            EndpointId => text(&ep.id),
            EndpointPort => Value::Int(i64::from(ep.port)),
            EndpointProtocol => text(&ep.protocol),
            EndpointUrl => text(&ep.url),
            TimeNow => text(self.now()),
            Vars => borrow(self.vars_value.get_or_init(|| self.vars_map())),
            // Absent: `null`, so `!= null` asks whether the action ran
            // (and `has()`, which takes `null` as absent, is false).
            ResultObject(prefix) => self.result_object(prefix).unwrap_or(Value::Null),
            Unavailable => return None,
        })
    }
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    first_value(h, &name).and_then(|v| v.to_str().ok())
}

fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

fn port_of(authority: &str, scheme: &str) -> Option<i64> {
    let after_host = match authority.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(_, p)| p),
        None => authority.rsplit_once(':').map_or("", |(_, p)| p),
    };
    match after_host.trim_start_matches(':') {
        "" => match scheme {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        },
        p => p.parse().ok(),
    }
}

fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn content_length(h: &HeaderMap) -> Option<Value<'static>> {
    header_str(h, header::CONTENT_LENGTH)?
        .trim()
        .parse()
        .ok()
        .map(Value::Int)
}

fn media_type(h: &HeaderMap) -> Option<&str> {
    let raw = header_str(h, header::CONTENT_TYPE)?;
    Some(raw.split(';').next().unwrap_or("").trim())
}

fn content_type_params(h: &HeaderMap) -> Value<'static> {
    let raw = header_str(h, header::CONTENT_TYPE).unwrap_or("");
    let entries = raw
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            (
                key(k.trim().to_ascii_lowercase()),
                Value::string(v.trim().trim_matches('"')),
            )
        })
        .collect();
    map(entries)
}

fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timestamp::new(
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        d.subsec_nanos(),
    )
    .unwrap_or_else(|_| Timestamp::now())
}

/// `req.cookies`: name to the cookies of that name, in header order.
fn request_cookies(h: &HeaderMap) -> Value<'static> {
    let mut by_name: Vec<(String, Vec<Value<'static>>)> = Vec::new();
    let pairs = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='));
    for (name, value) in pairs {
        let cookie = map(vec![
            (key("name"), Value::string(name)),
            (key("value"), Value::string(value.trim_matches('"'))),
        ]);
        match by_name.iter_mut().find(|(n, _)| n == name) {
            Some((_, list)) => list.push(cookie),
            None => by_name.push((name.to_owned(), vec![cookie])),
        }
    }
    map(by_name
        .into_iter()
        .map(|(n, l)| (key(n), Value::list(l)))
        .collect())
}

/// `res.cookies`: name to the `Set-Cookie` cookies of that name, longest
/// path first.
fn response_cookies(h: &Headers) -> Value<'static> {
    let mut by_name: Vec<(String, Vec<(usize, Value<'static>)>)> = Vec::new();
    for line in h.0.get_all(header::SET_COOKIE).iter() {
        let Ok(line) = line.to_str() else { continue };
        let mut attrs = line.split(';');
        let Some((name, value)) = attrs.next().and_then(|c| c.trim().split_once('=')) else {
            continue;
        };
        let mut fields = vec![
            (key("name"), Value::string(name.trim())),
            (key("value"), Value::string(value.trim().trim_matches('"'))),
        ];
        let (mut path, mut secure, mut http_only) = (String::new(), false, false);
        let mut unparsed = Vec::new();
        for attr in attrs {
            let (k, v) = attr.trim().split_once('=').unwrap_or((attr.trim(), ""));
            match k.to_ascii_lowercase().as_str() {
                "path" => path = v.to_owned(),
                "domain" => fields.push((key("domain"), Value::string(v))),
                "samesite" => fields.push((key("same_site"), Value::string(v))),
                "secure" => secure = true,
                "httponly" => http_only = true,
                "max-age" => {
                    if let Ok(secs) = v.parse::<i64>()
                        && let Ok(d) = portcullis_cel::time::Duration::from_secs(secs)
                    {
                        fields.push((key("max_age"), Value::Duration(d)));
                    }
                }
                "expires" => {
                    if let Some(t) = parse_http_date(v) {
                        fields.push((key("expires"), Value::Timestamp(t)));
                    }
                }
                "" => {}
                _ => unparsed.push((key(k.to_owned()), Value::string(v))),
            }
        }
        let path_len = path.len();
        fields.push((key("path"), Value::string(path)));
        fields.push((key("secure"), Value::Bool(secure)));
        fields.push((key("http_only"), Value::Bool(http_only)));
        fields.push((key("unparsed_attributes"), map(unparsed)));
        let cookie = map(fields);
        let name = name.trim().to_owned();
        match by_name.iter_mut().find(|(n, _)| *n == name) {
            Some((_, list)) => list.push((path_len, cookie)),
            None => by_name.push((name, vec![(path_len, cookie)])),
        }
    }
    map(by_name
        .into_iter()
        .map(|(n, mut l)| {
            l.sort_by_key(|c| std::cmp::Reverse(c.0));
            (key(n), Value::list(l.into_iter().map(|(_, c)| c).collect()))
        })
        .collect())
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form RFC 9110
/// requires senders to use.
fn parse_http_date(s: &str) -> Option<Timestamp> {
    let mut it = s.split_whitespace().skip(1);
    let day: u32 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i32 = it.next()?.parse().ok()?;
    let time = it.next()?;
    let text = format!("{year:04}-{month:02}-{day:02}T{time}Z");
    Timestamp::parse(&text).ok()
}

/// The map of `leaves` (paths and values) from path element `depth` on.
fn nest(leaves: &[(Vec<&str>, Value<'static>)], depth: usize) -> Value<'static> {
    let mut keys: Vec<&str> = Vec::new();
    for (path, _) in leaves {
        if let Some(k) = path.get(depth)
            && !keys.contains(k)
        {
            keys.push(k);
        }
    }
    let entries = keys
        .into_iter()
        .map(|k| {
            let under: Vec<(Vec<&str>, Value<'static>)> = leaves
                .iter()
                .filter(|(p, _)| p.get(depth) == Some(&k))
                .cloned()
                .collect();
            let value = match under.iter().find(|(p, _)| p.len() == depth + 1) {
                Some((_, v)) => v.clone(),
                None => nest(&under, depth + 1),
            };
            (key(k), value)
        })
        .collect();
    map(entries)
}

/// A fact of IP intelligence; `None` (absent) when no database of its
/// kind is configured.
fn intel_value(facts: &crate::ip_intel::Facts, fact: crate::env::Intel) -> Option<Value<'_>> {
    use crate::env::Intel::*;
    if matches!(fact, AsNumber | AsOrganization) {
        let (number, org) = facts.asn.as_ref()?;
        return Some(match fact {
            AsNumber => Value::Int(i64::from(*number)),
            _ => text(org),
        });
    }
    if fact == IsOnBlocklist {
        return facts.blocklisted.map(Value::Bool);
    }
    if matches!(fact, Categories | IsTorNode) {
        let a = facts.anonymous.as_ref()?;
        return Some(match fact {
            IsTorNode => Value::Bool(a.tor),
            _ => Value::list(
                a.categories
                    .iter()
                    .map(|c| Value::string(c.as_str()))
                    .collect(),
            ),
        });
    }
    let l = facts.location.as_ref()?;
    Some(match fact {
        City => text(&l.city),
        Continent => text(&l.continent),
        Country => text(&l.country),
        CountryCode => text(&l.country_code),
        IsEu => Value::Bool(l.is_eu),
        Latitude => text(&l.latitude),
        Longitude => text(&l.longitude),
        MetroCode => text(&l.metro_code),
        PostalCode => text(&l.postal_code),
        Radius => text(&l.radius),
        Subdivision => text(&l.subdivision),
        Timezone => text(&l.timezone),
        RegisteredContinent => text(&l.registered_continent),
        RegisteredCountry => text(&l.registered_country),
        RegisteredCountryCode => text(&l.registered_country_code),
        RegisteredIsEu => Value::Bool(l.registered_is_eu),
        AsNumber | AsOrganization | Categories | IsTorNode | IsOnBlocklist => return None,
    })
}
