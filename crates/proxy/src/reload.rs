//! Hot reload: a policy file is read again when its content changes
//! (checked every second) and on SIGHUP. A new policy
//! replaces the running one only if it loads without errors; otherwise its
//! diagnostics are logged and the old policy keeps serving.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use portcullis_cel::Diagnostic;
use portcullis_runtime::{Options, Pipeline};
use tokio::sync::watch;

use crate::server::{Shared, Site};

/// How often policy files are checked for changes.
const POLL: Duration = Duration::from_secs(1);

/// Reads and compiles the policy at `path`; the error lists every
/// diagnostic as `file:line:column: error[code]: message`.
pub fn load(path: &Path, options: &Options) -> Result<Pipeline, String> {
    let src = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the policy: {e}", path.display()))?;
    let pipeline = Pipeline::load(&src, options).map_err(|diags| {
        diags
            .iter()
            .map(|d| plain(path, &src, d))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    // Lint's `deployment-data` warnings, for a deployment that has no
    // IP intelligence: what the policy reads of it is absent.
    if !options.ip_intelligence {
        let (_, diags) = portcullis_policy::check_all(&src);
        for d in diags
            .iter()
            .filter(|d| d.code == portcullis_policy::code::lint::DEPLOYMENT_DATA)
        {
            tracing::warn!("{}", plain(path, &src, d));
        }
    }
    Ok(pipeline)
}

/// A diagnostic on one line.
pub fn plain(path: &Path, src: &str, d: &Diagnostic) -> String {
    let start = (d.span.start as usize).min(src.len());
    let before = src.get(..start).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let help = d
        .help
        .as_deref()
        .map(|h| format!(" (help: {h})"))
        .unwrap_or_default();
    format!(
        "{}:{line}:{col}: {}[{}]: {}{help}",
        path.display(),
        if d.is_error() { "error" } else { "warning" },
        d.code,
        d.message
    )
}

/// Watches every site's policy file, and SIGHUP, until stopped.
pub(crate) async fn watch(
    sites: Vec<Arc<Site>>,
    mut hup: Hangup,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    // The IP Policies file is part of every policy: a change to it
    // reloads them all.
    let policies_file = shared.ip_policies_file.clone();
    let stamp_of = |site: &Site| {
        (
            stamp(site.policy.as_deref()),
            stamp(policies_file.as_deref()),
        )
    };
    let mut seen: Vec<(Option<u64>, Option<u64>)> = sites.iter().map(|s| stamp_of(s)).collect();
    // The IP category lists are data, not policy: a change is read into
    // the lists in use, and new connections see it.
    let lists_stamp = || {
        shared
            .ip_intel
            .as_ref()
            .map(|i| i.list_files().map(modified).collect::<Vec<_>>())
    };
    let mut lists_seen = lists_stamp();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => false,
            _ = recv(&mut hup) => true,
            _ = stopped.wait_for(|s| *s) => return,
        };
        let lists_now = lists_stamp();
        if forced || lists_now != lists_seen {
            lists_seen = lists_now;
            if let Some(intel) = shared
                .ip_intel
                .as_ref()
                .filter(|i| i.list_files().next().is_some())
            {
                match intel.reload_lists() {
                    Ok(()) => tracing::info!("IP category lists reloaded"),
                    Err(e) => tracing::error!(
                        "an IP category list is invalid; the lists in use stay: {e}"
                    ),
                }
            }
        }
        for (site, last) in sites.iter().zip(seen.iter_mut()) {
            let Some(path) = &site.policy else { continue };
            let now = stamp_of(site);
            if !forced && now == *last {
                continue;
            }
            *last = now;
            reload(site, path, &shared);
        }
    }
}

fn reload(site: &Site, path: &Path, shared: &Shared) {
    let mut options = site.options(shared);
    if let Some(file) = &shared.ip_policies_file {
        match crate::config::ip_policies_file(file) {
            Ok(p) => options.ip_policies = Some(Arc::new(p)),
            Err(e) => {
                shared.metrics.reload(false, SystemTime::now());
                tracing::error!(
                    policy = %path.display(),
                    "the IP Policies are invalid; the previous policy keeps serving: {e}"
                );
                return;
            }
        }
    }
    match load(path, &options) {
        Ok(pipeline) => {
            site.pipeline.store(Arc::new(pipeline));
            shared.metrics.reload(true, SystemTime::now());
            tracing::info!(policy = %path.display(), "policy reloaded");
        }
        Err(errors) => {
            shared.metrics.reload(false, SystemTime::now());
            tracing::error!(
                policy = %path.display(),
                "the new policy is invalid; the previous one keeps serving:\n{errors}"
            );
        }
    }
}

/// A list file's size and modification time: lists can be large, and are
/// replaced whole by whatever keeps them current.
fn modified(path: &Path) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// A fingerprint of the file's content. Sizes and modification times
/// miss an edit that keeps the size within the file system's timestamp
/// granularity; policy files are small, so reading one each second is
/// cheap.
fn stamp(path: Option<&Path>) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let bytes = std::fs::read(path?).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

#[cfg(unix)]
pub(crate) type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
pub(crate) type Hangup = Option<()>;

#[cfg(unix)]
pub(crate) fn hangup() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
pub(crate) fn hangup() -> Hangup {
    None
}

#[cfg(unix)]
async fn recv(hup: &mut Hangup) {
    match hup {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn recv(_: &mut Hangup) {
    std::future::pending().await
}
