//! The uhid broker: the one process that opens `/dev/uhid`.
//!
//! Whoever can open `/dev/uhid` can create any HID device, a keyboard
//! included, and type into any window of the desktop. So `/dev/uhid` stays
//! root's, and this small root service makes devices for users on request:
//! a user's daemon connects to its unix socket, the kernel tells the broker
//! the peer's uid (`SO_PEERCRED`, which the peer cannot forge), and the
//! broker creates exactly one device for that uid, always a FIDO security
//! key described by [`uhid::REPORT_DESCRIPTOR`], and relays only 64-byte
//! reports between the socket and the device. The uhid descriptor never
//! leaves this process: whoever held it could destroy the device and create
//! a keyboard in its place.
//!
//! Read [`protocol`] (what a client may send), then [`relay`] (what the
//! broker does with it); [`uhid`] is the kernel's event layout.

#![forbid(unsafe_code)]

pub mod protocol;
pub mod relay;
pub mod uhid;

/// Where the packaged socket unit listens (`localpasskey-broker.socket`).
pub const SOCKET_PATH: &str = "/run/localpasskey/broker.sock";
