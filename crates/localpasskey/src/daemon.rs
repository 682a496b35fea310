//! The daemon loop: a transport, the CTAPHID state machine and the
//! authenticator, wired together with two threads.
//!
//! The I/O thread owns the transport's receive side and the framing state; it
//! never blocks on the authenticator, so keepalives, CANCEL, INIT and "channel
//! busy" answers flow while a request waits for the person. The worker thread
//! owns the authenticator and runs one request at a time; when it finishes it
//! frames and sends its answer itself, so a response never waits for the I/O
//! thread to wake up. With no traffic and no request running, the I/O thread
//! sleeps in `recv` with no timeout: an idle daemon does not wake up.
//!
//! Each answered request leaves one debug event on the `localpasskey::timing`
//! target (the queue wait, the authenticator, the framing and send), so a
//! benchmark can say where the time inside the daemon goes; it carries
//! command bytes and durations only.

use crate::transport::Transport;
use lp_core::authenticator::{Authenticator, Notice};
use lp_core::clock::Clock;
use lp_core::ctaphid::{cmd, Ctaphid, Event, BROADCAST_CID};
use lp_core::user::{Interaction, KeepaliveStatus};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The 64-byte datagram CTAP simulators treat as unplug-and-replug.
pub const POWER_CYCLE_REPORT: [u8; 64] = [
    0xac, 0x10, 0x52, 0xca, 0x95, 0xe5, 0x69, 0xde, 0x69, 0xe0, 0x2e, 0xbf, 0xf3, 0x33, 0x48, 0x5f, 0x13,
    0xf9, 0xb2, 0xda, 0x34, 0xc5, 0xa8, 0xa3, 0x40, 0x52, 0x66, 0x97, 0xa9, 0xab, 0x2e, 0x0b, 0x39, 0x4d,
    0x8d, 0x04, 0x97, 0x3c, 0x13, 0x40, 0x05, 0xbe, 0x1a, 0x01, 0x40, 0xbf, 0xf6, 0x04, 0x5b, 0xb2, 0x6e,
    0xb7, 0x7a, 0x73, 0xea, 0xa4, 0x78, 0x13, 0xf6, 0xb4, 0x9a, 0x72, 0x50, 0xdc,
];

/// CTAP1/U2F is deliberately absent (alwaysUv forbids it): CTAPHID_MSG gets
/// the ISO 7816 status word "instruction not supported".
const SW_INS_NOT_SUPPORTED: [u8; 2] = [0x6d, 0x00];

/// The request the worker is running, as seen by the I/O thread.
#[derive(Default)]
struct Current {
    txn: AtomicU64,
    cancelled: AtomicBool,
    status: AtomicU8,
}

impl Interaction for Current {
    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
    fn set_status(&self, status: KeepaliveStatus) {
        self.status.store(status as u8, Ordering::SeqCst);
    }
}

impl Current {
    fn status(&self) -> KeepaliveStatus {
        match self.status.load(Ordering::SeqCst) {
            2 => KeepaliveStatus::UpNeeded,
            _ => KeepaliveStatus::Processing,
        }
    }
}

/// Framing state plus who to answer, shared by both threads.
struct Link<P> {
    hid: Ctaphid,
    peers: HashMap<u32, P>,
}

enum Job {
    Request {
        txn: u64,
        cmd: u8,
        payload: Vec<u8>,
        /// When the I/O thread had the whole message.
        queued: Instant,
    },
    PowerCycle,
    /// Work for the authenticator from another caller than CTAP (the
    /// manager's D-Bus API): run on the worker thread, between requests.
    Call(Box<dyn FnOnce(&mut Authenticator) + Send>),
    /// The transport is gone: drop the authenticator (its custody flushes
    /// everything it loaded into the TPM) and end the thread.
    Stop,
}

struct Shared<T: Transport> {
    transport: T,
    link: Mutex<Link<T::Peer>>,
    current: Current,
    clock: Arc<dyn Clock>,
}

impl<T: Transport> Shared<T> {
    fn link(&self) -> MutexGuard<'_, Link<T::Peer>> {
        // A panic elsewhere must not take the device down with a poisoned lock.
        self.link.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Send reports, hand requests to the worker, pass on cancels.
    fn dispatch(&self, link: &Link<T::Peer>, events: Vec<Event>, jobs: &mpsc::Sender<Job>) {
        for event in events {
            match event {
                Event::Send { cid, report } => match link.peers.get(&cid) {
                    Some(peer) => {
                        if let Err(e) = self.transport.send(*peer, &report) {
                            tracing::warn!("send to {peer:?} failed: {e}");
                        }
                    }
                    None => tracing::debug!(cid, "no peer known for channel; report dropped"),
                },
                Event::Request {
                    txn,
                    cid,
                    cmd,
                    payload,
                } => {
                    tracing::debug!(cid, cmd, len = payload.len(), "request");
                    self.current.txn.store(txn, Ordering::SeqCst);
                    self.current.cancelled.store(false, Ordering::SeqCst);
                    self.current.set_status(KeepaliveStatus::Processing);
                    let queued = Instant::now();
                    if jobs
                        .send(Job::Request {
                            txn,
                            cmd,
                            payload,
                            queued,
                        })
                        .is_err()
                    {
                        tracing::error!("worker thread is gone");
                    }
                }
                Event::Cancel { txn } => {
                    if self.current.txn.load(Ordering::SeqCst) == txn {
                        tracing::info!("request cancelled by the platform");
                        self.current.cancelled.store(true, Ordering::SeqCst);
                    }
                }
                Event::Wink { cid } => tracing::info!(cid, "wink"),
            }
        }
    }
}

/// A way into the authenticator for callers other than the transport: the
/// authenticator has one owner, the worker thread, and everyone queues.
#[derive(Clone)]
pub struct Remote {
    jobs: mpsc::Sender<Job>,
}

impl Remote {
    /// Run `f` on the authenticator's thread and wait for its result; None
    /// when the daemon is stopping.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Authenticator) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = futures_channel::oneshot::channel();
        let job = Job::Call(Box::new(move |auth| {
            let _ = tx.send(f(auth));
        }));
        self.jobs.send(job).ok()?;
        rx.await.ok()
    }
}

/// The receiving end of [`Remote`], handed to [`run`].
pub struct Inbox {
    tx: mpsc::Sender<Job>,
    rx: mpsc::Receiver<Job>,
}

/// A [`Remote`] for callers and the [`Inbox`] the daemon reads it from.
pub fn channel() -> (Remote, Inbox) {
    let (tx, rx) = mpsc::channel();
    (Remote { jobs: tx.clone() }, Inbox { tx, rx })
}

/// Run until the transport fails. Returns the transport's error. What the
/// authenticator notices (log entries, changed passkeys) goes to `notices`.
pub fn run<T: Transport>(
    transport: T,
    mut auth: Authenticator,
    clock: Arc<dyn Clock>,
    inbox: Inbox,
    notices: Option<mpsc::Sender<Notice>>,
) -> std::io::Error {
    let hid = Ctaphid::with_max_message(transport.max_message_size());
    let shared = Arc::new(Shared {
        transport,
        link: Mutex::new(Link {
            hid,
            peers: HashMap::new(),
        }),
        current: Current::default(),
        clock,
    });
    let Inbox {
        tx: jobs_tx,
        rx: jobs_rx,
    } = inbox;

    let worker = {
        let shared = Arc::clone(&shared);
        let jobs_tx = jobs_tx.clone();
        std::thread::Builder::new()
            .name("authenticator".into())
            .spawn(move || loop {
                // Sleep until a job comes or the authenticator has timed work
                // (a token expiring locks the vault); no deadline, no wake-ups.
                let job = match auth.next_deadline() {
                    Some(d) => {
                        let wait = Duration::from_millis(d.saturating_sub(shared.clock.now()));
                        match jobs_rx.recv_timeout(wait) {
                            Ok(job) => job,
                            Err(mpsc::RecvTimeoutError::Timeout) => {
                                auth.tick();
                                continue;
                            }
                            Err(mpsc::RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    None => match jobs_rx.recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    },
                };
                match job {
                    Job::Stop => return,
                    Job::PowerCycle => auth.power_cycle(),
                    Job::Call(f) => f(&mut auth),
                    Job::Request {
                        txn,
                        cmd: command,
                        payload,
                        queued,
                    } => {
                        let started = Instant::now();
                        let response = match command {
                            cmd::CBOR => auth.answer(&payload, &shared.current),
                            _ => SW_INS_NOT_SUPPORTED.to_vec(),
                        };
                        let handled = Instant::now();
                        let mut link = shared.link();
                        let now = shared.clock.now();
                        let events = link.hid.respond(txn, command, &response, now);
                        shared.dispatch(&link, events, &jobs_tx);
                        drop(link);
                        let sent = Instant::now();
                        auth.settle();
                        let us = |d: Duration| d.as_micros() as u64;
                        tracing::debug!(
                            target: "localpasskey::timing",
                            hid_cmd = command,
                            ctap_cmd = payload.first().copied().unwrap_or(0),
                            queue_us = us(started - queued),
                            handle_us = us(handled - started),
                            frame_send_us = us(sent - handled),
                            settle_us = us(sent.elapsed()),
                            "answered"
                        );
                    }
                }
                for notice in auth.take_notices() {
                    if let Some(tx) = &notices {
                        let _ = tx.send(notice);
                    }
                }
            })
    };
    let worker = match worker {
        Ok(w) => w,
        Err(e) => return e,
    };
    let err = serve(&shared, &jobs_tx);
    // A stop (signal) or a failed transport: cancel what runs, let the worker
    // finish and drop the authenticator, so nothing stays loaded in the TPM
    // (swtpm has no resource manager to clean up after us).
    shared.current.cancelled.store(true, Ordering::SeqCst);
    let _ = jobs_tx.send(Job::Stop);
    if worker.join().is_err() {
        tracing::error!("the authenticator thread panicked");
    }
    err
}

/// The I/O loop; returns the transport's error (a signal's `Shutdown` included).
fn serve<T: Transport>(shared: &Arc<Shared<T>>, jobs_tx: &mpsc::Sender<Job>) -> std::io::Error {
    loop {
        let timeout = {
            let link = shared.link();
            link.hid
                .next_deadline()
                .map(|d| Duration::from_millis(d.saturating_sub(shared.clock.now())))
        };
        let incoming = match shared.transport.recv(timeout) {
            Ok(i) => i,
            Err(e) => return e,
        };
        let mut link = shared.link();
        let now = shared.clock.now();
        let events = match incoming {
            Some(i) if i.data == POWER_CYCLE_REPORT && shared.transport.simulates_power_cycle() => {
                tracing::info!("simulated power cycle: volatile state cleared, credentials kept");
                shared.current.cancelled.store(true, Ordering::SeqCst);
                link.hid.power_cycle();
                link.peers.clear();
                let _ = jobs_tx.send(Job::PowerCycle);
                continue;
            }
            Some(i) => {
                if i.data.len() == 64 {
                    let cid = u32::from_be_bytes([i.data[0], i.data[1], i.data[2], i.data[3]]);
                    // Answers on a channel (and the broadcast answer to INIT)
                    // go to whoever last spoke on it.
                    if link.peers.len() > 4096 && !link.peers.contains_key(&cid) {
                        link.peers.retain(|c, _| *c == BROADCAST_CID);
                    }
                    link.peers.insert(cid, i.peer);
                }
                link.hid.handle_report(&i.data, now)
            }
            None => Vec::new(),
        };
        let mut events = events;
        events.extend(link.hid.poll(now, shared.current.status()));
        shared.dispatch(&link, events, jobs_tx);
    }
}
