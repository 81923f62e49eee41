//! The harness of the end-to-end proxy tests: the real `portcullis` binary
//! on a loopback port, real upstreams, and a real HTTP client.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "a harness module shared by test binaries, each using part of it"
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A running `portcullis` process.
pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
    pub dir: PathBuf,
}

/// A fresh directory under the target directory's temp area.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "portcullis-test-{name}-{}-{}",
        std::process::id(),
        fastrand_u64()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

impl Proxy {
    /// Runs `portcullis http UPSTREAM --traffic-policy-file <policy>`.
    pub fn http(policy: &str, upstream: SocketAddr) -> Proxy {
        Proxy::http_with(policy, upstream, &[])
    }

    /// As [`Proxy::http`], with extra arguments.
    pub fn http_with(policy: &str, upstream: SocketAddr, extra: &[&str]) -> Proxy {
        let dir = temp_dir("http");
        let path = dir.join("policy.yml");
        std::fs::write(&path, policy).expect("write policy");
        let up = upstream.to_string();
        let mut args = vec![
            "http",
            up.as_str(),
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--log-format",
            "json",
            "--traffic-policy-file",
        ];
        let p = path.display().to_string();
        args.push(&p);
        args.extend_from_slice(extra);
        Proxy::spawn(&args, dir).expect("proxy starts")
    }

    /// Runs `portcullis serve --config <config>` (written into a fresh
    /// directory with `files`).
    pub fn serve(config: &str, files: &[(&str, &str)]) -> Proxy {
        let dir = temp_dir("serve");
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("write file");
        }
        let path = dir.join("portcullis.yml");
        std::fs::write(&path, config).expect("write config");
        let p = path.display().to_string();
        Proxy::spawn(&["serve", "--config", &p, "--log-format", "json"], dir).expect("proxy starts")
    }

    /// [`Proxy::serve`] with one endpoint on a free port in front of
    /// `upstream`; `rest` follows the endpoint's `upstream:` line (more of
    /// the endpoint, indented, then top-level settings).
    pub fn serve_for(
        upstream: &dyn std::fmt::Display,
        rest: &str,
        files: &[(&str, &str)],
    ) -> Proxy {
        Proxy::serve(
            &format!("endpoints:\n  - listen: 127.0.0.1:0\n    upstream: {upstream}\n{rest}"),
            files,
        )
    }

    /// Spawns the binary and waits for it to listen; on failure, returns
    /// what it printed.
    pub fn spawn(args: &[&str], dir: PathBuf) -> Result<Proxy, String> {
        Proxy::spawn_with_env(args, dir, &[])
    }

    /// As [`Proxy::spawn`], with `env` added to the environment.
    pub fn spawn_with_env(
        args: &[&str],
        dir: PathBuf,
        env: &[(String, String)],
    ) -> Result<Proxy, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn portcullis");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = after(&line, "listening on ") {
                    let _ = tx.send(("listen", addr));
                }
                if let Some(addr) = after(&line, "admin (/metrics, /healthz) on ") {
                    let _ = tx.send(("admin", addr));
                }
                sink.lock().expect("log").push_str(&line);
                sink.lock().expect("log").push('\n');
            }
            let _ = tx.send(("eof", String::new()));
        });
        let (mut addr, mut admin) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(("listen", a)) => addr = a.parse().ok(),
                Ok(("admin", a)) => admin = a.parse().ok(),
                Ok(("eof", _)) => break,
                _ => {}
            }
            // `serve` says in its file whether it has an admin listener.
            let wants_admin = args.contains(&"--admin")
                || (args.first() == Some(&"serve")
                    && args
                        .get(2)
                        .and_then(|p| std::fs::read_to_string(p).ok())
                        .is_some_and(|c| c.lines().any(|l| l.starts_with("admin:"))));
            if addr.is_some() && (admin.is_some() || !wants_admin) {
                break;
            }
        }
        // The admin line follows the listen line; give it a moment.
        match addr {
            Some(addr) => Ok(Proxy {
                child,
                addr,
                admin,
                log,
                dir,
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                Err(log.lock().expect("log").clone())
            }
        }
    }

    /// Everything the proxy printed so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A URL on the proxy.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The policy file of [`Proxy::http`].
    pub fn policy_path(&self) -> PathBuf {
        self.dir.join("policy.yml")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The address after `prefix` in a log line.
fn after(line: &str, prefix: &str) -> Option<String> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    Some(
        rest.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
            .collect(),
    )
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The echo upstream's JSON, if the upstream answered.
    pub fn echo(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// An HTTP/1.1 client.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// Sends `req` and reads the response.
pub async fn send(req: Request<Full<Bytes>>) -> Result<Resp, String> {
    let res = client().request(req).await.map_err(|e| format!("{e:?}"))?;
    let (parts, body) = res.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("{e:?}"))?
        .to_bytes();
    Ok(Resp {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// `GET url` with `headers`.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req.body(Full::new(Bytes::new())).expect("request"))
        .await
        .expect("response")
}

/// Starts the echo upstream.
pub async fn echo() -> SocketAddr {
    portcullis_proxy::echo::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("echo upstream")
}

/// A path that exists on no machine, for tests of missing files.
pub fn nowhere() -> &'static Path {
    Path::new("/nonexistent/portcullis")
}

/// An upstream that speaks raw HTTP/1.1, for what a well-behaved server
/// never does (answer late, never, or in pieces): `serve` gets each
/// connection after the request head was read from it.
pub async fn raw_upstream<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head).await;
            tokio::spawn(serve(stream));
        }
    });
    addr
}

/// [`raw_upstream`] for one connection: `serve` runs for the first, later
/// ones are dropped.
pub async fn raw_upstream_once<F, Fut>(serve: F) -> SocketAddr
where
    F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let once = Arc::new(Mutex::new(Some(serve)));
    raw_upstream(move |stream| {
        let serve = once.lock().expect("lock").take();
        async move {
            if let Some(serve) = serve {
                serve(stream).await;
            }
        }
    })
    .await
}

/// A raw TCP connection to `addr`, to write requests by hand.
pub async fn tcp(addr: SocketAddr) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(addr).await.expect("connect")
}

/// An HTTP/1.1 client on one connection: every request it sends goes over
/// the same keep-alive connection.
pub async fn one_connection(
    addr: SocketAddr,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

/// `GET url` on `conn`, read whole.
pub async fn get_on(
    conn: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    url: &str,
) -> Resp {
    conn.ready().await.expect("the connection stays open");
    let req = Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let res = conn.send_request(req).await.expect("response");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Resp {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// A self-signed certificate for `localhost`, written as PEM files into a
/// fresh directory (removed on drop; a proxy has read them at its start).
pub struct SelfSigned {
    dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate's PEM, to trust it.
    pub pem: String,
    /// The certificate's DER, to trust it.
    pub der: Vec<u8>,
}

impl SelfSigned {
    pub fn new(name: &str) -> SelfSigned {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
        let dir = temp_dir(name);
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).expect("write cert");
        std::fs::write(&key, made.key_pair.serialize_pem()).expect("write key");
        SelfSigned {
            dir,
            cert,
            key,
            pem: made.cert.pem(),
            der: made.cert.der().to_vec(),
        }
    }

    /// A TLS connection to `addr` as `localhost`, trusting this
    /// certificate alone, with `versions` and the ALPN protocols `alpn`.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(self.der.clone()))
            .expect("root");
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp(addr).await)
            .await
            .expect("TLS handshake")
    }

    /// `--tls-cert CERT --tls-key KEY`.
    pub fn flags(&self) -> [String; 4] {
        [
            "--tls-cert".to_owned(),
            self.cert.display().to_string(),
            "--tls-key".to_owned(),
            self.key.display().to_string(),
        ]
    }
}

impl Drop for SelfSigned {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
