//! The promises, proved against a real swtpm (one per test; never a mock).

use lp_core::custody::{CustodyError, KeyCustody, PublicKey};
use lp_tpm::{TpmCustody, TpmError, VaultBlob};
use p256::ecdsa::{signature::hazmat::PrehashVerifier, Signature, VerifyingKey};
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PIN: [u8; 32] = [7; 32];
const WRONG: [u8; 32] = [8; 32];
const NEW_PIN: [u8; 32] = [9; 32];

/// A swtpm on a random port pair (P, P+1) in 20000–31999, killed on drop.
struct Swtpm {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Swtpm {
    fn start() -> Swtpm {
        // libtss2 prints every TPM error; the tests provoke many on purpose.
        std::env::set_var("TSS2_LOG", "all+none");
        for _ in 0..50 {
            let random = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            let port = 20000 + (random % 11999) as u16; // P+1 <= 31999
            let dir = tempfile::tempdir().expect("tempdir");
            let mut child = Command::new("swtpm")
                .args(["socket", "--tpm2"])
                .arg(format!("--server=type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg(format!("--ctrl=type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .arg(format!("--tpmstate=dir={}", dir.path().display()))
                .args(["--flags", "not-need-init,startup-clear"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("swtpm is installed");
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if child.try_wait().expect("try_wait").is_some() {
                    break; // port taken: try another
                }
                let up = |p: u16| TcpStream::connect(("127.0.0.1", p)).is_ok();
                if up(port) && up(port + 1) && child.try_wait().expect("try_wait").is_none() {
                    return Swtpm {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        panic!("could not start swtpm");
    }

    fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    fn open(&self) -> TpmCustody {
        TpmCustody::open(&self.tcti()).expect("open swtpm")
    }

    /// DA parameters: `max_tries` failures before lockout, 1000 s to forget one.
    /// swtpm's lockout hierarchy has an empty authValue, so tpm2-tools may set them.
    fn set_da(&self, max_tries: u32) {
        let status = Command::new("tpm2_dictionarylockout")
            .args(["-s", "-n", &max_tries.to_string(), "-t", "1000", "-l", "1000"])
            .args(["-T", &self.tcti()])
            .env("TSS2_LOG", "all+none")
            .stdout(Stdio::null())
            .status()
            .expect("tpm2-tools is installed");
        assert!(status.success(), "tpm2_dictionarylockout failed");
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A relay between libtss2 and a swtpm that records every command sent to
/// the TPM, as a bus sniffer would (one TCP connection per command).
struct Sniffer {
    port: u16,
    commands: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Sniffer {
    fn start(tpm: &Swtpm) -> Sniffer {
        let commands = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..50 {
            let random = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            let port = 20000 + (random % 11999) as u16;
            let (Ok(data), Ok(ctrl)) = (
                TcpListener::bind(("127.0.0.1", port)),
                TcpListener::bind(("127.0.0.1", port + 1)),
            ) else {
                continue;
            };
            Self::relay(data, tpm.port, Some(commands.clone()));
            Self::relay(ctrl, tpm.port + 1, None);
            return Sniffer { port, commands };
        }
        panic!("no free port pair for the sniffer");
    }

    fn relay(listener: TcpListener, upstream: u16, log: Option<Arc<Mutex<Vec<Vec<u8>>>>>) {
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        return;
                    };
                    let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let back = std::thread::spawn(move || {
                        let (mut s_in, mut c_out) = (server, client);
                        let _ = std::io::copy(&mut s_in, &mut c_out);
                        let _ = c_out.shutdown(std::net::Shutdown::Both);
                    });
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = c_in.read(&mut buf) {
                        seen.extend_from_slice(&buf[..n]);
                        if s_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_out.shutdown(std::net::Shutdown::Write);
                    let _ = back.join();
                    if let Some(log) = log {
                        log.lock().unwrap().push(seen);
                    }
                });
            }
        });
    }

    fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    fn saw(&self, needle: &[u8]) -> bool {
        let commands = self.commands.lock().unwrap();
        commands
            .iter()
            .any(|c| c.windows(needle.len()).any(|w| w == needle))
    }
}

fn digest(n: u32) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(n.to_be_bytes()).into()
}

fn verify(public: &PublicKey, digest: &[u8; 32], der: &[u8]) {
    let point = p256::EncodedPoint::from_affine_coordinates(&public.x.into(), &public.y.into(), false);
    let key = VerifyingKey::from_encoded_point(&point).expect("valid public key");
    let sig = Signature::from_der(der).expect("DER signature");
    key.verify_prehash(digest, &sig).expect("signature verifies");
}

#[test]
fn create_sign_and_verify_with_p256() {
    let tpm = Swtpm::start();
    let mut custody = tpm.open();
    assert_eq!(custody.name(), "tpm");
    assert!(custody.is_hardware());
    custody.create_vault(&PIN).unwrap();
    assert!(custody.is_unlocked());
    let key = custody.create_key().unwrap();
    for n in 0..3 {
        let sig = custody.sign_digest(&key.blob, &digest(n)).unwrap();
        verify(&key.public, &digest(n), &sig);
    }
    // Only TPM-wrapped material in the blob: tag + TPM2B_PUBLIC (90) + TPM2B_PRIVATE (128).
    assert_eq!(&key.blob[..4], b"LPK\x01");
    assert!(key.blob.len() < 300, "blob is {} bytes", key.blob.len());
}

#[test]
fn credential_and_vault_attributes_are_the_promised_ones() {
    let tpm = Swtpm::start();
    let mut custody = tpm.open();
    let vault = custody.create_vault(&PIN).unwrap();
    let key = custody.create_key().unwrap();

    let a = TpmCustody::public_attributes(&key.blob).unwrap();
    assert!(a.fixed_tpm && a.fixed_parent && a.sensitive_data_origin && a.user_with_auth && a.sign);
    assert!(!a.decrypt && !a.restricted && !a.admin_with_policy && !a.no_da);
    assert!(!a.encrypted_duplication && a.ecc_p256);
    // Exactly these bits: fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|sign.
    assert_eq!(a.raw, (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 18));

    let v = TpmCustody::public_attributes(&vault.to_bytes()).unwrap();
    assert!(!v.no_da, "the vault must be DA-protected");
    assert!(v.fixed_tpm && v.fixed_parent && v.sensitive_data_origin && v.user_with_auth);
    assert!(v.restricted && v.decrypt && !v.sign && v.ecc_p256);
}

#[test]
fn blobs_load_only_into_the_tpm_that_made_them() {
    let (tpm_a, tpm_b) = (Swtpm::start(), Swtpm::start());
    let mut a = tpm_a.open();
    let vault = a.create_vault(&PIN).unwrap();
    let key = a.create_key().unwrap();
    drop(a);

    let mut b = tpm_b.open();
    assert!(matches!(b.unlock(&vault, &PIN), Err(TpmError::InvalidBlob)));
    assert!(!b.is_unlocked());
    // Even under an unlocked vault of its own with the same PIN, B refuses A's key.
    b.create_vault(&PIN).unwrap();
    assert!(matches!(
        b.sign_digest(&key.blob, &digest(0)),
        Err(CustodyError::InvalidBlob)
    ));

    // Tampered and malformed blobs are refused too.
    let mut tampered = key.blob.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let mut long = key.blob.clone();
    long.push(0);
    for bad in [
        &tampered[..],
        &key.blob[..10],
        &long[..],
        b"",
        b"LPK\x01\x00\x00\x00\x00",
    ] {
        assert!(matches!(
            b.sign_digest(bad, &digest(0)),
            Err(CustodyError::InvalidBlob)
        ));
    }
    assert!(b.is_unlocked());
}

#[test]
fn without_the_pin_nothing_signs_and_wrong_pins_are_counted() {
    let tpm = Swtpm::start();
    tpm.set_da(10);
    let mut custody = tpm.open();
    let vault = custody.create_vault(&PIN).unwrap();
    let key = custody.create_key().unwrap();
    custody.lock();
    assert!(!custody.is_unlocked());
    assert!(matches!(custody.create_key(), Err(CustodyError::Locked)));
    assert!(matches!(
        custody.sign_digest(&key.blob, &digest(0)),
        Err(CustodyError::Locked)
    ));

    let before = custody.da_status().unwrap();
    assert_eq!(before.max_tries, 10);
    assert!(matches!(
        custody.unlock(&vault, &WRONG),
        Err(TpmError::AuthFailed)
    ));
    assert!(!custody.is_unlocked());
    assert!(matches!(
        custody.sign_digest(&key.blob, &digest(0)),
        Err(CustodyError::Locked)
    ));
    let after = custody.da_status().unwrap();
    assert_eq!(after.counter, before.counter + 1, "the TPM counted the wrong PIN");
    assert!(!after.in_lockout);

    // Same process, same session: the right PIN still works.
    custody.unlock(&vault, &PIN).unwrap();
    let sig = custody.sign_digest(&key.blob, &digest(1)).unwrap();
    verify(&key.public, &digest(1), &sig);
}

#[test]
fn enough_wrong_pins_lock_the_tpm_out_even_for_the_right_pin() {
    let tpm = Swtpm::start();
    tpm.set_da(3);
    let mut custody = tpm.open();
    let vault = custody.create_vault(&PIN).unwrap();
    custody.lock();
    let mut wrong = 0;
    loop {
        match custody.unlock(&vault, &WRONG) {
            Err(TpmError::AuthFailed) => wrong += 1,
            Err(TpmError::Lockout) => break,
            other => panic!("unexpected {other:?}"),
        }
        assert!(wrong <= 3, "no lockout after {wrong} wrong tries");
    }
    assert_eq!(wrong, 3);
    let da = custody.da_status().unwrap();
    assert!(da.in_lockout);
    assert_eq!(da.counter, 3);
    assert!(matches!(custody.unlock(&vault, &PIN), Err(TpmError::Lockout)));
    assert!(!custody.is_unlocked());
    assert!(matches!(
        custody.change_auth(&vault, &PIN, &NEW_PIN),
        Err(TpmError::Lockout)
    ));
}

#[test]
fn change_auth_keeps_credentials_and_retires_the_old_pin() {
    let tpm = Swtpm::start();
    tpm.set_da(10);
    let mut custody = tpm.open();
    let vault = custody.create_vault(&PIN).unwrap();
    let key = custody.create_key().unwrap();

    assert!(matches!(
        custody.change_auth(&vault, &WRONG, &NEW_PIN),
        Err(TpmError::AuthFailed)
    ));
    assert!(!custody.is_unlocked());

    let new_vault = custody.change_auth(&vault, &PIN, &NEW_PIN).unwrap();
    assert_eq!(new_vault.public, vault.public);
    assert_ne!(new_vault.private, vault.private);
    assert!(custody.is_unlocked(), "left unlocked with the new PIN");
    let sig = custody.sign_digest(&key.blob, &digest(0)).unwrap();
    verify(&key.public, &digest(0), &sig);

    custody.lock();
    assert!(matches!(
        custody.unlock(&new_vault, &PIN),
        Err(TpmError::AuthFailed)
    ));
    custody.unlock(&new_vault, &NEW_PIN).unwrap();
    let sig = custody.sign_digest(&key.blob, &digest(1)).unwrap();
    verify(&key.public, &digest(1), &sig);
    // Keys created after the change work alike.
    let key2 = custody.create_key().unwrap();
    verify(
        &key2.public,
        &digest(2),
        &custody.sign_digest(&key2.blob, &digest(2)).unwrap(),
    );
}

#[test]
fn key_cache_fits_swtpm_three_slots() {
    let tpm = Swtpm::start();
    let mut custody = tpm.open();
    let info = custody.describe().unwrap();
    assert_eq!(info.transient_slots, Some(3));
    assert_eq!(info.key_cache_size, 1);
    custody.create_vault(&PIN).unwrap();
    let keys: Vec<_> = (0..3).map(|_| custody.create_key().unwrap()).collect();
    for n in 0..30 {
        let key = &keys[n as usize % 3];
        let sig = custody.sign_digest(&key.blob, &digest(n)).expect("no 0x902");
        verify(&key.public, &digest(n), &sig);
    }
    // TPM2_Create needs a free slot too: creating and signing interleaved.
    for n in 0..4 {
        let key = custody.create_key().expect("create with a full cache");
        verify(
            &key.public,
            &digest(n),
            &custody.sign_digest(&key.blob, &digest(n)).unwrap(),
        );
        let old = &keys[n as usize % 3];
        verify(
            &old.public,
            &digest(n),
            &custody.sign_digest(&old.blob, &digest(n)).unwrap(),
        );
    }
    // Repeated use of one key does not leak slots either.
    for n in 0..5 {
        let sig = custody.sign_digest(&keys[0].blob, &digest(n)).unwrap();
        verify(&keys[0].public, &digest(n), &sig);
    }
}

#[test]
fn unlocking_again_rechecks_the_pin_in_the_tpm() {
    let tpm = Swtpm::start();
    tpm.set_da(10);
    let mut custody = tpm.open();
    let vault = custody.create_vault(&PIN).unwrap();
    let key = custody.create_key().unwrap();
    custody.sign_digest(&key.blob, &digest(0)).unwrap();
    // A second unlock of the loaded vault is still a TPM check: the right
    // PIN passes (and keeps the cached key), a wrong one is counted and
    // locks everything.
    TpmCustody::unlock(&mut custody, &vault, &PIN).unwrap();
    assert!(custody.is_unlocked());
    let before = custody.da_status().unwrap().counter;
    assert!(matches!(
        TpmCustody::unlock(&mut custody, &vault, &WRONG),
        Err(TpmError::AuthFailed)
    ));
    assert_eq!(custody.da_status().unwrap().counter, before + 1);
    assert!(!custody.is_unlocked());
    assert!(matches!(
        custody.sign_digest(&key.blob, &digest(1)),
        Err(CustodyError::Locked)
    ));
    TpmCustody::unlock(&mut custody, &vault, &PIN).unwrap();
    verify(
        &key.public,
        &digest(2),
        &custody.sign_digest(&key.blob, &digest(2)).unwrap(),
    );
}

#[test]
fn reopen_recreates_the_primary_and_unlocks_the_stored_vault() {
    let tpm = Swtpm::start();
    let mut first = tpm.open();
    let stored = first.create_vault(&PIN).unwrap().to_bytes();
    let key = first.create_key().unwrap();
    drop(first);

    for _ in 0..3 {
        let mut again = tpm.open();
        assert!(!again.is_unlocked());
        let vault = VaultBlob::from_bytes(&stored).unwrap();
        again.unlock(&vault, &PIN).unwrap();
        let sig = again.sign_digest(&key.blob, &digest(5)).unwrap();
        verify(&key.public, &digest(5), &sig);
    }
}

#[test]
fn reset_locks_and_describe_reports_the_tpm() {
    let tpm = Swtpm::start();
    let mut custody = tpm.open();
    let info = custody.describe().unwrap();
    assert_eq!(info.manufacturer, "IBM");
    assert!(info.ecc_p256);
    let da = custody.da_status().unwrap();
    assert!(!da.in_lockout);

    let vault = custody.create_vault(&PIN).unwrap();
    let key = custody.create_key().unwrap();
    custody.reset().unwrap();
    assert!(!custody.is_unlocked());
    assert!(matches!(
        custody.sign_digest(&key.blob, &digest(0)),
        Err(CustodyError::Locked)
    ));

    // Storage format round trip, and garbage refused.
    assert_eq!(VaultBlob::from_bytes(&vault.to_bytes()).unwrap(), vault);
    assert!(matches!(
        VaultBlob::from_bytes(&key.blob),
        Err(TpmError::InvalidBlob)
    ));
    assert!(matches!(
        VaultBlob::from_bytes(b"LPV\x01"),
        Err(TpmError::InvalidBlob)
    ));
    // A credential blob is not a vault, even if someone relabels it.
    let relabelled = [b"LPV\x01", &key.blob[4..]].concat();
    let fake = VaultBlob::from_bytes(&relabelled).unwrap();
    assert!(matches!(custody.unlock(&fake, &PIN), Err(TpmError::InvalidBlob)));
}

#[test]
fn the_pin_never_crosses_the_bus_in_clear_and_the_session_is_salted() {
    let tpm = Swtpm::start();
    let sniffer = Sniffer::start(&tpm);
    let (pin, new_pin) = (digest(1111), digest(2222));
    let mut custody = TpmCustody::open(&sniffer.tcti()).unwrap();
    let vault = custody.create_vault(&pin).unwrap();
    custody.lock();
    custody.unlock(&vault, &pin).unwrap();
    let vault = custody.change_auth(&vault, &pin, &new_pin).unwrap();
    custody.unlock(&vault, &new_pin).unwrap();
    let key = custody.create_key().unwrap();
    let signed = digest(3333);
    custody.sign_digest(&key.blob, &signed).unwrap();
    drop(custody);

    // The sniffer does see plaintext parameters (the digest to sign is not secret) ...
    assert!(
        sniffer.saw(&signed),
        "sniffer sees nothing: the test would prove nothing"
    );
    // ... but never an authValue: TPM2_Create (vault) and TPM2_ObjectChangeAuth
    // carry it only parameter-encrypted.
    assert!(
        !sniffer.saw(&pin) && !sniffer.saw(&new_pin),
        "an authValue crossed the bus in clear"
    );

    // TPM2_StartAuthSession (0x176) names a tpmKey and sends an encrypted salt.
    let commands = sniffer.commands.lock().unwrap();
    let starts: Vec<_> = commands
        .iter()
        .filter(|c| c.len() > 22 && c[6..10] == [0, 0, 1, 0x76])
        .collect();
    assert!(!starts.is_empty());
    for c in starts {
        let tpm_key = u32::from_be_bytes(c[10..14].try_into().unwrap());
        assert_eq!(
            tpm_key >> 24,
            0x80,
            "tpmKey must be our transient primary, not TPM_RH_NULL"
        );
        let nonce = u16::from_be_bytes([c[18], c[19]]) as usize;
        let salt = u16::from_be_bytes([c[20 + nonce], c[21 + nonce]]);
        assert!(salt > 0, "unsalted session");
    }
}
