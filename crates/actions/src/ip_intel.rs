//! IP intelligence from databases the deployment names: where an address
//! is (`conn.geo.*`, `conn.client_ip.geo.*`), its autonomous system
//! (`.as.*`), and whether it is an anonymizer (`.is_tor_node`,
//! `.categories`).
//!
//! ngrok computes these in its cloud; Portcullis reads MaxMind DB files
//! (`ip_intelligence:` in `serve`'s config, `--ip-intelligence FILE` on
//! `http`): GeoIP2 or GeoLite2 City or Country for the location, GeoLite2
//! ASN (or GeoIP2 ISP) for the autonomous system, GeoIP2 Anonymous IP for
//! Tor exits and anonymous proxies. Each file's kind is read from its
//! metadata, so the order does not matter.
//!
//! - **A source not configured** leaves its variables absent: `has()` is
//!   false and reading one is a run-time error (the rule fails rather than
//!   decides on an empty value), and the proxy warns at load where a policy
//!   reads one.
//! - **An address a configured database does not know** (a private
//!   address, a new range) reads as ngrok's empty values: `""`, `false`,
//!   `0`, `[]`, so `conn.geo.country_code in ['KP']` is false for it rather
//!   than an error on every internal request.
//! - **Categories** follow ngrok's hierarchy: an anonymizer is
//!   `proxy.anonymous`, a Tor exit also `proxy.anonymous.tor`.
//! - **Lists** (`ip_categories:`, read by `ip_intel/lists.rs`) add categories of their
//!   own: Tor exits, blocklists, cloud ranges, each a file of addresses
//!   the deployment keeps current, re-read when it changes. A list under
//!   `proxy.anonymous.tor` makes `is_tor_node` true, one under
//!   `blocklist` makes `is_on_blocklist` true; without a blocklist,
//!   `is_on_blocklist` is absent rather than a `false` nobody computed.
//!
//! A lookup is done at most once per connection and address (`Conn`
//! caches it).

mod lists;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use maxminddb::{Reader, geoip2};

use lists::Lists;

/// The databases and lists of a deployment.
#[derive(Default)]
pub struct IpIntel {
    location: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
    anonymous: Option<Reader<Vec<u8>>>,
    /// The category lists' files, read again by [`IpIntel::reload_lists`].
    list_files: Vec<(String, PathBuf)>,
    lists: RwLock<Arc<Lists>>,
}

impl std::fmt::Debug for IpIntel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpIntel")
            .field("location", &self.location.is_some())
            .field("asn", &self.asn.is_some())
            .field("anonymous", &self.anonymous.is_some())
            .field("lists", &self.list_files)
            .finish()
    }
}

/// Which kind of database a file is, from its metadata's
/// `database_type` (`GeoIP2-City`, `GeoLite2-ASN`, ...).
fn kind(database_type: &str) -> Option<Kind> {
    let t = database_type.to_ascii_lowercase();
    if t.contains("anonymous-ip") {
        Some(Kind::Anonymous)
    } else if t.contains("asn") || t.contains("isp") {
        Some(Kind::Asn)
    } else if t.contains("city") || t.contains("country") || t.contains("enterprise") {
        Some(Kind::Location)
    } else {
        None
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Location,
    Asn,
    Anonymous,
}

impl IpIntel {
    /// Opens the MaxMind DB files at `paths`.
    pub fn open(paths: &[impl AsRef<Path>]) -> Result<IpIntel, String> {
        let mut intel = IpIntel::default();
        for path in paths {
            let path = path.as_ref();
            let reader =
                Reader::open_readfile(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let database_type = reader.metadata().database_type.clone();
            let slot = match kind(&database_type) {
                Some(Kind::Location) => &mut intel.location,
                Some(Kind::Asn) => &mut intel.asn,
                Some(Kind::Anonymous) => &mut intel.anonymous,
                None => {
                    return Err(format!(
                        "{}: a `{database_type}` database; expected a City, Country, ASN, ISP or Anonymous IP database",
                        path.display()
                    ));
                }
            };
            if slot.is_some() {
                return Err(format!(
                    "{}: a second database of the same kind (`{database_type}`)",
                    path.display()
                ));
            }
            *slot = Some(reader);
        }
        Ok(intel)
    }

    /// Adds the category lists `files` (`(category, file)`), read now.
    pub fn with_lists(mut self, files: Vec<(String, PathBuf)>) -> Result<IpIntel, String> {
        let lists = Lists::read(&files)?;
        self.list_files = files;
        self.lists = RwLock::new(Arc::new(lists));
        Ok(self)
    }

    /// The category lists' files.
    pub fn list_files(&self) -> impl Iterator<Item = &Path> {
        self.list_files.iter().map(|(_, p)| p.as_path())
    }

    /// Reads the category lists again; on an error the lists in use stay.
    pub fn reload_lists(&self) -> Result<(), String> {
        let lists = Arc::new(Lists::read(&self.list_files)?);
        if let Ok(mut current) = self.lists.write() {
            *current = lists;
        }
        Ok(())
    }

    /// What the databases and lists say of `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Facts {
        let mut facts = Facts::default();
        if let Some(db) = &self.location {
            let record = db
                .lookup(ip)
                .ok()
                .and_then(|r| r.decode::<geoip2::City<'_>>().ok().flatten());
            facts.location = Some(record.map(|c| Location::of(&c)).unwrap_or_default());
        }
        if let Some(db) = &self.asn {
            let record = db
                .lookup(ip)
                .ok()
                .and_then(|r| r.decode::<geoip2::Asn<'_>>().ok().flatten());
            facts.asn = Some(match record {
                Some(a) => (
                    a.autonomous_system_number.unwrap_or(0),
                    a.autonomous_system_organization.unwrap_or("").to_owned(),
                ),
                None => (0, String::new()),
            });
        }
        if let Some(db) = &self.anonymous {
            let record = db
                .lookup(ip)
                .ok()
                .and_then(|r| r.decode::<geoip2::AnonymousIp>().ok().flatten());
            let mut categories = Vec::new();
            let (mut tor, mut anonymous) = (false, false);
            if let Some(a) = record {
                tor = a.is_tor_exit_node == Some(true);
                anonymous = tor
                    || a.is_anonymous == Some(true)
                    || a.is_anonymous_vpn == Some(true)
                    || a.is_public_proxy == Some(true);
            }
            if anonymous {
                categories.push("proxy.anonymous".to_owned());
            }
            if tor {
                categories.push("proxy.anonymous.tor".to_owned());
            }
            facts.anonymous = Some(Anonymity { tor, categories });
        }
        if !self.list_files.is_empty() {
            let lists = match self.lists.read() {
                Ok(l) => l.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            };
            let listed = lists.categories(ip);
            if lists.has("blocklist") {
                facts.blocklisted = Some(listed.iter().any(|c| lists::within(c, "blocklist")));
            }
            let a = facts.anonymous.get_or_insert_with(Anonymity::default);
            a.tor |= listed.iter().any(|c| c == "proxy.anonymous.tor");
            a.categories.extend(listed);
            a.categories.sort_unstable();
            a.categories.dedup();
        }
        facts
    }
}

/// What is known of an address: `None` where no database of the kind is
/// configured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    /// From the City or Country database.
    pub location: Option<Location>,
    /// `(number, organization)` from the ASN database.
    pub asn: Option<(u32, String)>,
    /// From the Anonymous IP database and the category lists.
    pub anonymous: Option<Anonymity>,
    /// Whether a blocklist has the address (`None` without one).
    pub blocklisted: Option<bool>,
}

/// Where an address is, as ngrok names the parts (English names; empty
/// when unknown).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Location {
    /// The city.
    pub city: String,
    /// The continent.
    pub continent: String,
    /// The country.
    pub country: String,
    /// The ISO 3166 two-letter country code.
    pub country_code: String,
    /// Whether the country is in the European Union.
    pub is_eu: bool,
    /// The latitude, as text (ngrok makes it a string).
    pub latitude: String,
    /// The longitude, as text.
    pub longitude: String,
    /// The metro code, as text.
    pub metro_code: String,
    /// The postal code.
    pub postal_code: String,
    /// The accuracy radius in km, as text.
    pub radius: String,
    /// The largest subdivision (state, province).
    pub subdivision: String,
    /// The time zone (`Europe/London`).
    pub timezone: String,
    /// The continent of the registered country (not in the record: empty).
    pub registered_continent: String,
    /// The country where the network is registered.
    pub registered_country: String,
    /// Its ISO code.
    pub registered_country_code: String,
    /// Whether it is in the European Union.
    pub registered_is_eu: bool,
}

fn number(n: Option<impl ToString>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

impl Location {
    fn of(c: &geoip2::City<'_>) -> Location {
        let en = |names: &geoip2::Names<'_>| names.english.unwrap_or("").to_owned();
        Location {
            city: en(&c.city.names),
            continent: en(&c.continent.names),
            country: en(&c.country.names),
            country_code: c.country.iso_code.unwrap_or("").to_owned(),
            is_eu: c.country.is_in_european_union == Some(true),
            latitude: number(c.location.latitude),
            longitude: number(c.location.longitude),
            metro_code: number(c.location.metro_code),
            postal_code: c.postal.code.unwrap_or("").to_owned(),
            radius: number(c.location.accuracy_radius),
            subdivision: c
                .subdivisions
                .first()
                .map(|s| en(&s.names))
                .unwrap_or_default(),
            timezone: c.location.time_zone.unwrap_or("").to_owned(),
            // The registered country's continent is not in the record.
            registered_continent: String::new(),
            registered_country: en(&c.registered_country.names),
            registered_country_code: c.registered_country.iso_code.unwrap_or("").to_owned(),
            registered_is_eu: c.registered_country.is_in_european_union == Some(true),
        }
    }
}

/// Whether an address is an anonymizer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Anonymity {
    /// A Tor exit node.
    pub tor: bool,
    /// ngrok's categories (`proxy.anonymous`, `proxy.anonymous.tor`, and
    /// those of the lists), sorted.
    pub categories: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/maxmind")
            .join(name)
    }

    fn intel() -> IpIntel {
        IpIntel::open(&[
            data("GeoLite2-ASN-Test.mmdb"),
            data("GeoIP2-City-Test.mmdb"),
            data("GeoIP2-Anonymous-IP-Test.mmdb"),
        ])
        .expect("MaxMind's test databases open")
    }

    #[test]
    fn a_known_address_reads_as_maxmind_publishes_it() {
        let f = intel().lookup("81.2.69.142".parse().unwrap());
        let l = f.location.expect("a location database");
        assert_eq!(l.country_code, "GB");
        assert_eq!(l.country, "United Kingdom");
        assert_eq!(l.city, "London");
        assert_eq!(l.continent, "Europe");
        assert_eq!(l.subdivision, "England");
        assert_eq!(l.timezone, "Europe/London");
        assert!(!l.latitude.is_empty() && !l.longitude.is_empty());
        let a = f.anonymous.expect("an anonymous IP database");
        assert!(a.tor);
        assert_eq!(a.categories, ["proxy.anonymous", "proxy.anonymous.tor"]);

        let f = intel().lookup("1.128.0.1".parse().unwrap());
        assert_eq!(f.asn, Some((1221, "Telstra Pty Ltd".to_owned())));
    }

    #[test]
    fn an_unknown_address_reads_as_empty_values_not_absent() {
        let f = intel().lookup("127.0.0.1".parse().unwrap());
        assert_eq!(f.location, Some(Location::default()));
        assert_eq!(f.asn, Some((0, String::new())));
        assert_eq!(f.anonymous, Some(Anonymity::default()));
        assert_eq!(
            IpIntel::default().lookup("81.2.69.142".parse().unwrap()),
            Facts::default()
        );
    }

    #[test]
    fn a_file_that_is_no_database_is_an_error_naming_it() {
        let e =
            IpIntel::open(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")]).unwrap_err();
        assert!(e.contains("Cargo.toml"), "{e}");
        let e = IpIntel::open(&[data("GeoIP2-City-Test.mmdb"), data("GeoIP2-City-Test.mmdb")])
            .unwrap_err();
        assert!(e.contains("a second database"), "{e}");
    }
}
