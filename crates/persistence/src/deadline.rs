//! A deadline on every wait for the database, whatever the database or the network does.
//!
//! PostgreSQL's own timeouts end work the server is doing (`statement_timeout`), libpq's
//! end a connection attempt (`connect_timeout`) and TCP's end a connection whose peer
//! stopped acknowledging (`keepalives*`, `tcp_user_timeout`). None of them ends a wait on a
//! server that is frozen (stopped by SIGSTOP, a hung VM, a storage stall) while its
//! kernel still acknowledges every packet: libpq then waits in `recv` for ever, and the
//! cancellation it offers goes through the postmaster, which is frozen too.
//!
//! So every statement runs under a client-side deadline: the earlier of the caller's
//! deadline ([`within`], which the HTTP layer sets to the request's arrival plus
//! `database.deadline_ms`) and the statement's start plus that bound. A [`Watchdog`] thread
//! per pool watches the statements running on its connections; one past its deadline has
//! its connection's socket shut down, so libpq's `recv` returns, the statement fails, the
//! blocked thread is free again and the connection is dropped from the pool instead of
//! being taken back. The socket is found once per connection, when it is opened: the one
//! this process opened meanwhile, and if several, the one whose local port is the
//! server's `inet_client_port()` (Linux: `/proc/self/fd`; elsewhere no socket is found and
//! the HTTP layer's own timeout still answers in time).

use std::cell::Cell;
use std::collections::HashSet;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use diesel::connection::{Instrumentation, InstrumentationEvent};

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static LIFTED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `work` without the client-side deadline on its statements: for the whole-table
/// operations of the operator commands (`normalize`, an `import` batch), which lift
/// `statement_timeout` too and wait up to 30 s for their table lock. TCP keepalives and
/// `tcp_user_timeout` still end them if the server's host goes away.
pub(crate) fn lifted<T>(work: impl FnOnce() -> T) -> T {
    /// Puts the flag back, even when `work` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            LIFTED.with(|l| l.set(self.0));
        }
    }
    let _restore = Restore(LIFTED.with(|l| l.replace(true)));
    work()
}

/// Runs `work` with every wait for the database in it bounded by `deadline`: no statement,
/// connection checkout or retry outlasts it.
pub fn within<T>(deadline: Instant, work: impl FnOnce() -> T) -> T {
    /// Puts the outer deadline back, even when `work` panics.
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            DEADLINE.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(DEADLINE.with(|d| d.replace(Some(deadline))));
    work()
}

/// The deadline [`within`] set on this thread, if any.
pub(crate) fn current() -> Option<Instant> {
    DEADLINE.with(Cell::get)
}

/// Time left before [`current`], or `None` without a deadline.
pub(crate) fn remaining() -> Option<Duration> {
    current().map(|d| d.saturating_duration_since(Instant::now()))
}

/// The database did not answer in time; the connection that waited was dropped.
#[derive(Debug, thiserror::Error)]
#[error("the database did not answer within {} ms (database.deadline_ms)", .bound.as_millis())]
pub struct DeadlineExceeded {
    pub bound: Duration,
}

/// One connection's socket, and the deadline of the statement running on it.
#[derive(Debug)]
pub(crate) struct Watched {
    socket: RawFd,
    /// Set while a statement runs. The watchdog shuts the socket down only while holding
    /// this lock and finding a deadline passed, so once [`Watched::close`] returned, it never
    /// touches the descriptor again (which the connection then closes and the process may
    /// reuse).
    deadline: Mutex<Option<Instant>>,
    fired: AtomicBool,
    /// The bound the deadline came from, for the error.
    bound: Duration,
}

impl Watched {
    fn arm(&self) {
        if LIFTED.with(Cell::get) {
            return;
        }
        let own = Instant::now() + self.bound;
        let deadline = current().map_or(own, |d| d.min(own));
        *lock(&self.deadline) = Some(deadline);
    }

    fn disarm(&self) {
        *lock(&self.deadline) = None;
    }

    /// Disarms for good: the connection is about to close its socket.
    pub(crate) fn close(&self) {
        self.disarm();
    }

    /// Whether the watchdog cut this connection.
    pub(crate) fn fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    pub(crate) fn error(&self) -> DeadlineExceeded {
        DeadlineExceeded { bound: self.bound }
    }

    /// Shuts the socket down if its deadline passed.
    fn check(&self, now: Instant) {
        let mut deadline = lock(&self.deadline);
        if deadline.is_some_and(|d| d <= now) {
            *deadline = None;
            self.fired.store(true, Ordering::Release);
            tracing::warn!(
                bound_ms = self.bound.as_millis(),
                "the database did not answer in time: dropping the connection"
            );
            if let Err(error) =
                nix::sys::socket::shutdown(self.socket, nix::sys::socket::Shutdown::Both)
            {
                tracing::warn!(%error, "cannot shut down the connection's socket");
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Diesel calls this around every statement of the connection: the statement's deadline is
/// armed when it starts and disarmed when it ends.
pub(crate) struct Armer(pub(crate) Arc<Watched>);

impl Instrumentation for Armer {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => self.0.arm(),
            InstrumentationEvent::FinishQuery { .. } => self.0.disarm(),
            _ => {}
        }
    }
}

/// The thread that cuts the connections of one pool whose statement outlived its deadline.
pub(crate) struct Watchdog {
    watched: Arc<Mutex<Vec<Weak<Watched>>>>,
    bound: Duration,
}

/// How often the watchdog looks: a statement is cut at most this long after its deadline.
const TICK: Duration = Duration::from_millis(50);

impl Watchdog {
    /// Starts the thread; it ends when the watchdog is dropped.
    pub(crate) fn start(bound: Duration) -> Self {
        let watched = Arc::new(Mutex::new(Vec::<Weak<Watched>>::new()));
        let weak = Arc::downgrade(&watched);
        let spawned = std::thread::Builder::new()
            .name("db-watchdog".to_owned())
            .spawn(move || {
                while let Some(watched) = weak.upgrade() {
                    let now = Instant::now();
                    let live: Vec<Arc<Watched>> = {
                        let mut list = lock(&watched);
                        list.retain(|w| w.strong_count() > 0);
                        list.iter().filter_map(Weak::upgrade).collect()
                    };
                    drop(watched);
                    for w in live {
                        w.check(now);
                    }
                    std::thread::sleep(TICK);
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the database watchdog");
        }
        Self { watched, bound }
    }

    /// Watches the connection whose socket is `socket`.
    pub(crate) fn watch(&self, socket: RawFd) -> Arc<Watched> {
        let watched = Arc::new(Watched {
            socket,
            deadline: Mutex::new(None),
            fired: AtomicBool::new(false),
            bound: self.bound,
        });
        lock(&self.watched).push(Arc::downgrade(&watched));
        watched
    }
}

/// This process's open sockets: descriptor and inode.
pub(crate) fn sockets() -> HashSet<(RawFd, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return HashSet::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let fd: RawFd = entry.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            let inode = target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()?;
            Some((fd, inode))
        })
        .collect()
}

/// The socket of a connection opened between `before` and now: the one new socket, or
/// among several the one whose local port is `client_port` (asked only then).
pub(crate) fn find_socket(
    before: &HashSet<(RawFd, u64)>,
    client_port: impl FnOnce() -> Option<u16>,
) -> Option<RawFd> {
    let new: Vec<RawFd> = sockets().difference(before).map(|&(fd, _)| fd).collect();
    match new.as_slice() {
        [] => None,
        [fd] => Some(*fd),
        several => {
            let port = client_port()?;
            let mut matching = several.iter().copied().filter(|&fd| {
                nix::sys::socket::getsockname::<nix::sys::socket::SockaddrStorage>(fd)
                    .ok()
                    .and_then(|addr| {
                        addr.as_sockaddr_in()
                            .map(nix::sys::socket::SockaddrIn::port)
                            .or_else(|| addr.as_sockaddr_in6().map(|a| a.port()))
                    })
                    == Some(port)
            });
            match (matching.next(), matching.next()) {
                (Some(fd), None) => Some(fd),
                _ => None,
            }
        }
    }
}
