//! Real gateways for the tests: Debian's nginx and Caddy, each started with
//! its own configuration in a fresh directory and stopped on drop.
//! scripts/test installs both when they are missing.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "a harness module shared by test binaries, each using part of it"
)]

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NGINX: &str = "/usr/sbin/nginx";
const CADDY: &str = "/usr/bin/caddy";

/// A fresh directory for one gateway's files.
fn fresh_dir(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("portcullis-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a fresh directory");
    dir
}

/// A free port on loopback.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A running gateway process.
pub struct Gateway {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its files (configuration, logs).
    pub dir: PathBuf,
    log: PathBuf,
}

impl Gateway {
    /// nginx with `servers` (the inside of `http { }`) listening on
    /// `port`.
    pub fn nginx(servers: &str, port: u16) -> Gateway {
        assert!(
            std::path::Path::new(NGINX).exists(),
            "nginx is not installed ({NGINX} is missing); scripts/test installs it \
             (apt-get install nginx-light)"
        );
        let dir = fresh_dir("nginx");
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n\
             access_log off;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
             {servers}\n}}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).expect("write nginx.conf");
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let log = dir.join("error.log");
        Gateway::ready(child, port, dir, log, "nginx")
    }

    /// Caddy with a Caddyfile listening on `port` (its admin endpoint off,
    /// its data under its own directory).
    pub fn caddy(caddyfile: &str, port: u16) -> Gateway {
        assert!(
            std::path::Path::new(CADDY).exists(),
            "Caddy is not installed ({CADDY} is missing); scripts/test installs it \
             (apt-get install caddy)"
        );
        let dir = fresh_dir("caddy");
        let path = dir.join("Caddyfile");
        std::fs::write(&path, format!("{{\n\tadmin off\n}}\n{caddyfile}")).expect("write");
        let log = dir.join("caddy.log");
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(CADDY)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&path)
            .env("HOME", &dir)
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("spawn caddy");
        Gateway::ready(child, port, dir, log, "caddy")
    }

    fn ready(child: Child, port: u16, dir: PathBuf, log: PathBuf, what: &str) -> Gateway {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut g = Gateway {
            child,
            addr,
            dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline || g.child.try_wait().ok().flatten().is_some() {
                panic!("{what} did not start: {}", g.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        g
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The documented configuration `file` (under `docs/forward-auth/`), with
/// its example addresses replaced by the test's: Portcullis
/// (`127.0.0.1:4180`), the app (`127.0.0.1:8080`) and the gateway's own
/// listener (`127.0.0.1:8000` for nginx, `127.0.0.1:8001` for Caddy).
pub fn documented(file: &str, portcullis: SocketAddr, app: SocketAddr, port: u16) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/forward-auth")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("documented configuration");
    text.replace("127.0.0.1:4180", &portcullis.to_string())
        .replace("127.0.0.1:8080", &app.to_string())
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:8001", &format!("127.0.0.1:{port}"))
}
