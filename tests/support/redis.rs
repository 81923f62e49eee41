//! Real `redis-server`s for the tests: standalone, or a three-master
//! Redis Cluster, on free loopback ports, in a fresh directory, stopped
//! when dropped. `scripts/test` installs Debian's `redis-server` when it
//! is missing; without it these tests fail and say so.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "a harness module shared by test binaries, each using part of it"
)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_listening(port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server did not listen on {port}");
}

fn redis_server() -> &'static str {
    for p in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"] {
        if std::path::Path::new(p).exists() {
            return p;
        }
    }
    panic!("redis-server is not installed (scripts/test installs Debian's redis-server)");
}

impl Redis {
    /// A standalone server on a free port, keeping nothing on disk.
    pub fn start() -> Redis {
        Redis::start_with(free_port(), &[])
    }

    /// A standalone server that writes every change to its append-only
    /// file before answering, so that what it held survives a kill.
    pub fn start_persistent() -> Redis {
        Redis::start_with(
            free_port(),
            &["--appendonly", "yes", "--appendfsync", "always"],
        )
    }

    fn start_with(port: u16, extra: &[&str]) -> Redis {
        let dir = std::env::temp_dir().join(format!(
            "portcullis-test-redis-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        if !extra.iter().any(|a| a == "--appendonly") {
            extra.extend(["--appendonly".to_owned(), "no".to_owned()]);
        }
        let mut r = Redis {
            child: None,
            port,
            dir,
            extra,
        };
        r.restart();
        r
    }

    /// A standalone server that speaks TLS only, with the certificate and
    /// key (PEM files) given.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Redis {
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        let port = free_port();
        let tls = port.to_string();
        Redis::start_with(
            port,
            &[
                "--port",
                "0",
                "--tls-port",
                &tls,
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
                "--tls-auth-clients",
                "no",
            ],
        )
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (as a crash would: no shutdown save).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port: empty, or with what its
    /// append-only file kept.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(redis_server())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--protected-mode",
                "no",
                "--enable-debug-command",
                "local",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        wait_listening(self.port);
    }

    /// Runs `redis-cli -p <port> ARGS...` and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three masters on loopback, every slot covered;
/// `cluster-require-full-coverage no`, so that the slots of a master that
/// is still up keep working when another is killed.
pub struct Cluster {
    pub nodes: Vec<Redis>,
}

impl Cluster {
    pub fn start() -> Cluster {
        let nodes: Vec<Redis> = (0..3)
            .map(|i| {
                let port = free_port();
                Redis::start_with(
                    port,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &format!("nodes-{i}-{port}.conf"),
                        "--cluster-require-full-coverage",
                        "no",
                        "--cluster-node-timeout",
                        "2000",
                    ],
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while !nodes
            .iter()
            .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "the cluster never became ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        Cluster { nodes }
    }

    /// `redis+cluster://127.0.0.1:a,127.0.0.1:b,127.0.0.1:c`.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }
}
