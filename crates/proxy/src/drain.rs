//! Telling a listener's open connections to finish and close.
//!
//! On stop, every connection is told to finish the request in flight and
//! close (hyper's graceful shutdown), and [`Drain::drain`] returns once
//! they all have. A connection checks one flag per poll and gives its waker
//! once, when it opens; hyper-util's `GracefulShutdown` polls a watch
//! channel on every poll of every connection, which took a lock each time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

use tokio::sync::Notify;

/// One listener's connections.
#[derive(Clone, Default)]
pub(crate) struct Drain(Arc<Inner>);

#[derive(Default)]
struct Inner {
    stopping: AtomicBool,
    /// The open connections' wakers, by connection.
    open: Mutex<Open>,
    /// Fires when the last connection closes while stopping.
    closed: Notify,
    /// The grace period is over: what is still open closes now.
    forced: AtomicBool,
    force: Notify,
}

#[derive(Default)]
struct Open {
    next: u64,
    wakers: HashMap<u64, Option<Waker>>,
}

impl Drain {
    /// A connection opened.
    pub(crate) fn watch(&self) -> Watch {
        let id = match self.0.open.lock() {
            Ok(mut open) => {
                let id = open.next;
                open.next += 1;
                open.wakers.insert(id, None);
                Some(id)
            }
            Err(_) => None,
        };
        Watch {
            drain: self.0.clone(),
            id,
            registered: false,
        }
    }

    /// Tells every connection to finish, and waits until all have closed.
    pub(crate) async fn drain(&self) {
        let closed = self.0.closed.notified();
        let mut closed = std::pin::pin!(closed);
        closed.as_mut().enable();
        self.0.stopping.store(true, Ordering::SeqCst);
        let wakers: Vec<Waker> = match self.0.open.lock() {
            Ok(open) if open.wakers.is_empty() => return,
            Ok(open) => open.wakers.values().flatten().cloned().collect(),
            Err(_) => return,
        };
        for w in wakers {
            w.wake();
        }
        closed.await;
    }
}

impl Drain {
    /// Ends the grace period: tunnels still open close (an HTTP connection
    /// is dropped with the task that serves it).
    pub(crate) fn force(&self) {
        self.0.forced.store(true, Ordering::SeqCst);
        self.0.force.notify_waiters();
    }
}

/// A connection's hold on its listener's [`Drain`].
pub(crate) struct Watch {
    drain: Arc<Inner>,
    id: Option<u64>,
    registered: bool,
}

impl Watch {
    /// Whether the listener is stopping. The first call leaves the task's
    /// waker, which a tokio task keeps for its whole life.
    pub(crate) fn stopping(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.registered {
            self.registered = true;
            if let (Some(id), Ok(mut open)) = (self.id, self.drain.open.lock())
                && let Some(slot) = open.wakers.get_mut(&id)
            {
                *slot = Some(cx.waker().clone());
            }
        }
        self.drain.stopping.load(Ordering::SeqCst)
    }
}

impl Watch {
    /// Resolves when the grace period is over ([`Drain::force`]).
    pub(crate) async fn forced(&self) {
        loop {
            let notified = self.drain.force.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.drain.forced.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let Ok(mut open) = self.drain.open.lock() else {
            return;
        };
        if let Some(id) = self.id {
            open.wakers.remove(&id);
        }
        if open.wakers.is_empty() && self.drain.stopping.load(Ordering::SeqCst) {
            self.drain.closed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn force_ends_what_waits_for_the_grace_period() {
        let drain = Drain::default();
        let watch = drain.watch();
        let tunnel = tokio::spawn(async move { watch.forced().await });
        drain.force();
        tunnel.await.expect("the tunnel's wait ends");
        // A watch taken after the force sees it too.
        drain.watch().forced().await;
    }

    #[tokio::test]
    async fn drain_returns_at_once_without_connections() {
        Drain::default().drain().await;
    }

    #[tokio::test]
    async fn drain_wakes_open_connections_and_waits_for_them() {
        let drain = Drain::default();
        let mut watch = drain.watch();
        let (told, mut heard) = tokio::sync::oneshot::channel::<()>();
        let conn = tokio::spawn(async move {
            // A connection that runs until it is told to stop.
            std::future::poll_fn(|cx| {
                if watch.stopping(cx) {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
            let _ = told.send(());
            drop(watch);
        });
        drain.drain().await;
        assert!(
            heard.try_recv().is_ok(),
            "drain returned before the connection closed"
        );
        conn.await.expect("connection task");
    }
}
