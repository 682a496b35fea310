//! LocalPasskey's sans-IO core.
//!
//! Nothing in this crate opens a file, a socket or a device: bytes come in,
//! bytes go out, and everything the authenticator needs from the outside world
//! (key custody, the credential store, the person at the keyboard, the clock)
//! arrives through the seams in [`custody`], [`store`], [`user`] and [`clock`].
//! That is what lets the whole protocol be tested in memory and fuzzed.
#![forbid(unsafe_code)]

pub mod activity;
pub mod authdata;
pub mod authenticator;
pub mod cbor;
pub mod clock;
pub mod ctaphid;
pub mod custody;
pub mod enterprise;
pub mod extensions;
pub mod persistent_token;
pub mod pin;
pub mod pin_protocol;
pub mod platform;
pub mod status;
pub mod store;
pub mod types;
pub mod user;

/// This project's own AAGUID: one random UUID generated for LocalPasskey on
/// 2026-11-22 and never reused by anything else. It identifies the *model*
/// (LocalPasskey for Linux), not the device, so it says nothing about who
/// the user is. `cb8a205c-984c-4e7e-98eb-5800f04355ef`.
pub const AAGUID: [u8; 16] = [
    0xcb, 0x8a, 0x20, 0x5c, 0x98, 0x4c, 0x4e, 0x7e, 0x98, 0xeb, 0x58, 0x00, 0xf0, 0x43, 0x55, 0xef,
];

/// [`AAGUID`] as UUIDs are written, for people and relying parties' lists.
pub const AAGUID_TEXT: &str = "cb8a205c-984c-4e7e-98eb-5800f04355ef";

/// The largest CTAPHID message: one initialisation packet (57 bytes of
/// payload) plus 128 continuation packets (59 bytes each). A transport may
/// accept less (`Config::max_msg_size`, `Ctaphid::with_max_message`).
pub const MAX_MSG_SIZE: usize = 7609;

/// Firmware version reported in GetInfo: the crate version as major*10000 + minor*100 + patch.
pub const FIRMWARE_VERSION: u32 = 100;

#[cfg(test)]
mod tests {
    #[test]
    fn the_aaguid_text_is_the_aaguid() {
        let hex: String = super::AAGUID.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(super::AAGUID_TEXT.replace('-', ""), hex);
        assert_eq!(super::AAGUID_TEXT.len(), 36);
    }
}
