//! Replays the seed corpus and every saved regression input through the
//! harnesses without libFuzzer, so `cargo test --manifest-path fuzz/Cargo.toml`
//! (and CI) checks them on any toolchain.
use std::path::Path;

fn replay(dir: &str, run: impl Fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for sub in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(sub).join(dir)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            eprintln!("replaying {}", path.display());
            run(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn ctap_command_seeds() {
    assert!(
        replay("ctap_command", |d| lp_fuzz::run_authenticator(
            d,
            lp_fuzz::Focus::AllCommands
        )) > 0
    );
}

#[test]
fn client_pin_seeds() {
    assert!(
        replay("client_pin", |d| lp_fuzz::run_authenticator(
            d,
            lp_fuzz::Focus::ClientPin
        )) > 0
    );
}

#[test]
fn ctaphid_seeds() {
    assert!(replay("ctaphid", lp_fuzz::run_ctaphid) > 0);
}

/// The seeds on disk are the ones `seeds()` makes (run the writer after changing them).
#[test]
fn seeds_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for (target, name, bytes) in lp_fuzz::seeds() {
        let on_disk = std::fs::read(root.join(target).join(name)).unwrap_or_default();
        assert!(on_disk == bytes, "seeds/{target}/{name} is stale: run `cargo run --manifest-path fuzz/Cargo.toml --example write_seeds`");
    }
}
