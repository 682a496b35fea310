//! `localpasskey`: the daemon and the command line to manage its passkeys.

mod bench;
mod cli;
mod client;
mod daemon;
mod dbus;
mod doctor;
mod enterprise;
mod manager;
mod pinentry;
mod presence;
mod prompt_desktop;
mod setup;
mod store_sqlite;
mod tpm_protect;
mod transport;
mod uninstall;

fn main() -> std::process::ExitCode {
    cli::main()
}
