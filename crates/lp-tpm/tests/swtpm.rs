//! The promises, proved against a real swtpm (one per test; never a mock).

use lp_core::custody::{Algorithm, CustodyError, KeyCustody, PublicKey};
use lp_tpm::{TpmCustody, TpmError, VaultBlob, MAX_HMAC_MESSAGE};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

const PIN: [u8; 32] = [7; 32];
const WRONG: [u8; 32] = [8; 32];
const NEW_PIN: [u8; 32] = [9; 32];

mod common;

use common::{ctrl_path, Swtpm};

type Log = Arc<Mutex<Vec<Vec<u8>>>>;

/// A relay between libtss2 and a swtpm that records every command sent to
/// the TPM and every response, as a bus sniffer would (one connection per
/// command).
struct Sniffer {
    dir: tempfile::TempDir,
    commands: Log,
    responses: Log,
}

impl Sniffer {
    fn start(tpm: &Swtpm) -> Sniffer {
        let (commands, responses): (Log, Log) = Default::default();
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("tpm.sock");
        let data = UnixListener::bind(&sock).expect("sniffer socket");
        let ctrl = UnixListener::bind(ctrl_path(&sock)).expect("sniffer control socket");
        Self::relay(data, tpm.socket(), Some((commands.clone(), responses.clone())));
        Self::relay(ctrl, ctrl_path(&tpm.socket()), None);
        Sniffer {
            dir,
            commands,
            responses,
        }
    }

    fn relay(listener: UnixListener, upstream: PathBuf, log: Option<(Log, Log)>) {
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let log = log.clone();
                let upstream = upstream.clone();
                std::thread::spawn(move || {
                    let Ok(server) = UnixStream::connect(&upstream) else {
                        return;
                    };
                    let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let back = std::thread::spawn(move || {
                        let (mut s_in, mut c_out) = (server, client);
                        let mut seen = Vec::new();
                        let mut buf = [0u8; 4096];
                        while let Ok(n @ 1..) = s_in.read(&mut buf) {
                            seen.extend_from_slice(&buf[..n]);
                            if c_out.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = c_out.shutdown(std::net::Shutdown::Both);
                        seen
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
                    let answer = back.join().unwrap_or_default();
                    if let Some((commands, responses)) = log {
                        commands.lock().unwrap().push(seen);
                        responses.lock().unwrap().push(answer);
                    }
                });
            }
        });
    }

    fn tcti(&self) -> String {
        format!("swtpm:path={}", self.dir.path().join("tpm.sock").display())
    }

    /// `needle` appeared on the bus, in a command or in a response.
    fn saw(&self, needle: &[u8]) -> bool {
        [&self.commands, &self.responses].iter().any(|log| {
            log.lock()
                .unwrap()
                .iter()
                .any(|c| c.windows(needle.len()).any(|w| w == needle))
        })
    }
}

fn digest(n: u32) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(n.to_be_bytes()).into()
}

fn verify(public: &PublicKey, message: &[u8; 32], signature: &[u8]) {
    assert!(public.verifies(message, signature), "signature does not verify");
}

#[test]
fn create_sign_and_verify_with_p256() {
    let tpm = Swtpm::start();
    let mut custody = tpm.open();
    // swtpm is named for what it is: a software TPM, never "hardware".
    assert_eq!(custody.name(), "software-tpm");
    assert!(!custody.is_hardware());
    assert!(custody.is_software());
    custody.create_vault(&PIN).unwrap();
    assert!(custody.is_unlocked());
    let key = custody.create_key(Algorithm::Es256).unwrap();
    for n in 0..3 {
        let sig = custody.sign(&key.blob, &digest(n)).unwrap();
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
    let key = custody.create_key(Algorithm::Es256).unwrap();

    let a = TpmCustody::public_attributes(&key.blob).unwrap();
    assert!(a.fixed_tpm && a.fixed_parent && a.sensitive_data_origin && a.user_with_auth && a.sign);
    assert!(!a.decrypt && !a.restricted && !a.admin_with_policy && a.no_da);
    assert!(!a.encrypted_duplication && a.ecc_p256);
    // Exactly these bits: fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|noDA|sign.
    assert_eq!(
        a.raw,
        (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 10) | (1 << 18)
    );

    assert!(!a.hmac_sha256);

    // The HMAC key (hmac-secret): the same bits, on a KeyedHash HMAC-SHA-256.
    let hmac = custody.create_hmac_key().unwrap();
    assert_eq!(&hmac[..4], b"LPH\x01");
    let h = TpmCustody::public_attributes(&hmac).unwrap();
    assert!(h.fixed_tpm && h.fixed_parent && h.sensitive_data_origin && h.user_with_auth && h.sign);
    assert!(!h.decrypt && !h.restricted && !h.admin_with_policy && h.no_da);
    assert!(!h.encrypted_duplication && h.hmac_sha256 && !h.ecc_p256);
    assert_eq!(
        h.raw,
        (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 10) | (1 << 18)
    );

    // The vault: usable only through its policy, its authValue never changeable.
    let v = TpmCustody::public_attributes(&vault.to_bytes()).unwrap();
    assert!(v.fixed_tpm && v.fixed_parent && v.sensitive_data_origin && !v.user_with_auth);
    assert!(v.admin_with_policy && v.no_da && v.has_policy);
    assert!(v.restricted && v.decrypt && !v.sign && v.ecc_p256 && !v.hmac_sha256);
}

#[test]
fn blobs_load_only_into_the_tpm_that_made_them() {
    let (tpm_a, tpm_b) = (Swtpm::start(), Swtpm::start());
    let mut a = tpm_a.open();
    let vault = a.create_vault(&PIN).unwrap();
    let key = a.create_key(Algorithm::Es256).unwrap();
    drop(a);

    let mut b = tpm_b.open();
    // Its PIN index and counters are not in B, and its blobs do not load there.
    assert!(matches!(
        b.unlock(&vault, &PIN),
        Err(TpmError::Revoked | TpmError::InvalidBlob)
    ));
    assert!(!b.is_unlocked());
    // Even under an unlocked vault of its own with the same PIN, B refuses A's key.
    b.create_vault(&PIN).unwrap();
    assert!(matches!(
        b.sign(&key.blob, &digest(0)),
        Err(TpmError::InvalidBlob)
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
        assert!(matches!(b.sign(bad, &digest(0)), Err(TpmError::InvalidBlob)));
    }
    assert!(b.is_unlocked());
}

#[test]
fn without_the_pin_nothing_signs_and_wrong_pins_are_counted() {
    let tpm = Swtpm::start();
    let mut custody = tpm.open();
    let vault = custody.create_vault(&PIN).unwrap();
    let key = custody.create_key(Algorithm::Es256).unwrap();
    custody.lock();
    assert!(!custody.is_unlocked());
    assert!(matches!(
        custody.create_key(Algorithm::Es256),
        Err(CustodyError::Locked)
    ));
    assert!(matches!(
        custody.sign(&key.blob, &digest(0)),
        Err(TpmError::Locked)
    ));

    let da = custody.da_status().unwrap().counter;
    assert!(matches!(
        custody.unlock(&vault, &WRONG),
        Err(TpmError::AuthFailed)
    ));
    assert!(!custody.is_unlocked());
    assert!(matches!(
        custody.sign(&key.blob, &digest(0)),
        Err(TpmError::Locked)
    ));
    let counts = custody.pin_counts(&vault).unwrap().unwrap();
    assert_eq!(counts.failures, 1, "the TPM's PIN index counted the wrong PIN");
    assert_eq!(
        custody.da_status().unwrap().counter,
        da,
        "and the DA counter did not"
    );

    // Same process, same session: the right PIN still works.
    custody.unlock(&vault, &PIN).unwrap();
    let sig = custody.sign(&key.blob, &digest(1)).unwrap();
    verify(&key.public, &digest(1), &sig);
}

/// A vault without a PIN index (made before it, or accepted on a TPM
/// without one) is bounded by the DA lockout alone: maxTries, then nothing.
#[test]
fn an_unguarded_vault_is_bounded_by_the_dictionary_attack_lockout() {
    let tpm = Swtpm::start();
    let out = tpm.tool(
        "tpm2_dictionarylockout",
        &["-s", "-n", "3", "-t", "1000", "-l", "1000"],
    );
    assert!(out.status.success(), "tpm2_dictionarylockout failed");
    let mut custody = tpm.open();
    let auth = tss_esapi::structures::Auth::try_from(&PIN[..]).unwrap();
    let vault = custody.create_unguarded_vault(&auth).unwrap();
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
    let mut custody = tpm.open();
    let vault = custody.create_vault(&PIN).unwrap();
    let key = custody.create_key(Algorithm::Es256).unwrap();

    assert!(matches!(
        custody.change_auth(&vault, &WRONG, &NEW_PIN),
        Err(TpmError::AuthFailed)
    ));
    assert!(!custody.is_unlocked());

    let prepared = custody.change_auth(&vault, &PIN, &NEW_PIN).unwrap();
    let new_vault = custody.commit_change(&prepared, &PIN, &NEW_PIN).unwrap();
    assert_ne!(new_vault, vault);
    assert!(matches!(
        custody.unlock(&new_vault, &PIN),
        Err(TpmError::AuthFailed)
    ));
    custody.unlock(&new_vault, &NEW_PIN).unwrap();
    let sig = custody.sign(&key.blob, &digest(1)).unwrap();
    verify(&key.public, &digest(1), &sig);
    // Keys created after the change work alike.
    let key2 = custody.create_key(Algorithm::Es256).unwrap();
    verify(
        &key2.public,
        &digest(2),
        &custody.sign(&key2.blob, &digest(2)).unwrap(),
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
    let keys: Vec<_> = (0..3)
        .map(|_| custody.create_key(Algorithm::Es256).unwrap())
        .collect();
    for n in 0..30 {
        let key = &keys[n as usize % 3];
        let sig = custody.sign(&key.blob, &digest(n)).expect("no 0x902");
        verify(&key.public, &digest(n), &sig);
    }
    // TPM2_Create needs a free slot too: creating and signing interleaved.
    for n in 0..4 {
        let key = custody
            .create_key(Algorithm::Es256)
            .expect("create with a full cache");
        verify(
            &key.public,
            &digest(n),
            &custody.sign(&key.blob, &digest(n)).unwrap(),
        );
        let old = &keys[n as usize % 3];
        verify(
            &old.public,
            &digest(n),
            &custody.sign(&old.blob, &digest(n)).unwrap(),
        );
    }
    // Repeated use of one key does not leak slots either.
    for n in 0..5 {
        let sig = custody.sign(&keys[0].blob, &digest(n)).unwrap();
        verify(&keys[0].public, &digest(n), &sig);
    }
}

#[test]
fn unlocking_again_rechecks_the_pin_in_the_tpm() {
    let tpm = Swtpm::start();
    let mut custody = tpm.open();
    let vault = custody.create_vault(&PIN).unwrap();
    let key = custody.create_key(Algorithm::Es256).unwrap();
    custody.sign(&key.blob, &digest(0)).unwrap();
    // A second unlock is still a TPM check: the right PIN passes, a wrong
    // one is counted and locks everything.
    TpmCustody::unlock(&mut custody, &vault, &PIN).unwrap();
    assert!(custody.is_unlocked());
    assert!(matches!(
        TpmCustody::unlock(&mut custody, &vault, &WRONG),
        Err(TpmError::AuthFailed)
    ));
    assert_eq!(custody.pin_counts(&vault).unwrap().unwrap().failures, 1);
    assert!(!custody.is_unlocked());
    assert!(matches!(
        custody.sign(&key.blob, &digest(1)),
        Err(TpmError::Locked)
    ));
    TpmCustody::unlock(&mut custody, &vault, &PIN).unwrap();
    verify(
        &key.public,
        &digest(2),
        &custody.sign(&key.blob, &digest(2)).unwrap(),
    );
}

#[test]
fn reopen_recreates_the_primary_and_unlocks_the_stored_vault() {
    let tpm = Swtpm::start();
    let mut first = tpm.open();
    let stored = first.create_vault(&PIN).unwrap().to_bytes();
    let key = first.create_key(Algorithm::Es256).unwrap();
    drop(first);

    for _ in 0..3 {
        let mut again = tpm.open();
        assert!(!again.is_unlocked());
        let vault = VaultBlob::from_bytes(&stored).unwrap();
        again.unlock(&vault, &PIN).unwrap();
        let sig = again.sign(&key.blob, &digest(5)).unwrap();
        verify(&key.public, &digest(5), &sig);
    }
}

#[test]
fn reset_locks_and_describe_reports_the_tpm() {
    let tpm = Swtpm::start();
    let mut custody = tpm.open();
    let info = custody.describe().unwrap();
    assert_eq!(info.manufacturer, "IBM");
    assert!(info.ecc_p256 && info.software && !info.isolated);
    let da = custody.da_status().unwrap();
    assert!(!da.in_lockout);

    let vault = custody.create_vault(&PIN).unwrap();
    let key = custody.create_key(Algorithm::Es256).unwrap();
    KeyCustody::reset(&mut custody, Some(&vault.to_bytes())).unwrap();
    assert!(!custody.is_unlocked());
    assert!(matches!(
        custody.sign(&key.blob, &digest(0)),
        Err(TpmError::Locked)
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
    let prepared = custody.change_auth(&vault, &pin, &new_pin).unwrap();
    let vault = custody.commit_change(&prepared, &pin, &new_pin).unwrap();
    custody.unlock(&vault, &new_pin).unwrap();
    let key = custody.create_key(Algorithm::Es256).unwrap();
    let signed = digest(3333);
    custody.sign(&key.blob, &signed).unwrap();
    drop(custody);

    // The sniffer does see plaintext parameters (the digest to sign is not secret) ...
    // (We hash the message; the TPM is sent its SHA-256.)
    let signed: [u8; 32] = {
        use sha2::Digest;
        sha2::Sha256::digest(signed).into()
    };
    assert!(
        sniffer.saw(&signed),
        "sniffer sees nothing: the test would prove nothing"
    );
    // ... but never the PIN: PolicySecret proves it with an HMAC in a salted
    // session, and TPM2_NV_DefineSpace, TPM2_Create (the seal) and
    // TPM2_NV_ChangeAuth carry it only parameter-encrypted.
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

/// HMAC-SHA-256 in software (RFC 2104), for the sanity checks below.
fn software_hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| block.iter().map(|k| k ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[test]
fn software_hmac_matches_rfc_4231() {
    // Test case 2 of RFC 4231, so the sanity checks below compare with a real HMAC.
    let out = software_hmac(b"Jefe", b"what do ya want for nothing?");
    assert_eq!(
        out[..8],
        [0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e],
        "software HMAC-SHA-256 is wrong"
    );
}

#[test]
fn hmac_is_deterministic_per_key_and_message_and_survives_a_reopen() {
    let tpm = Swtpm::start();
    let mut custody = tpm.open();
    let vault = custody.create_vault(&PIN).unwrap().to_bytes();
    let (k1, k2) = (
        custody.create_hmac_key().unwrap(),
        custody.create_hmac_key().unwrap(),
    );
    assert_ne!(k1, k2);
    assert!(k1.len() < 300, "HMAC blob is {} bytes", k1.len());
    // hmac-secret sends one or two 32-byte salts.
    let (m1, m2) = (digest(1), digest(2));

    let h11 = custody.hmac(&k1, &m1).unwrap();
    assert_eq!(custody.hmac(&k1, &m1).unwrap(), h11, "same key, same message");
    let h12 = custody.hmac(&k1, &m2).unwrap();
    let h21 = custody.hmac(&k2, &m1).unwrap();
    let h22 = custody.hmac(&k2, &m2).unwrap();
    let all = [h11, h12, h21, h22];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a, b, "different key or message, same output");
        }
        // Nothing computable without the TPM's key.
        for m in [&m1, &m2] {
            assert_ne!(*a, software_hmac(&[0; 32], m));
            assert_ne!(*a, software_hmac(b"", m));
            use sha2::Digest;
            assert_ne!(a[..], sha2::Sha256::digest(m)[..]);
        }
    }
    // Edge sizes: empty and the largest message work, a larger one is refused.
    let empty = custody.hmac(&k1, b"").unwrap();
    assert_ne!(empty, h11);
    assert_ne!(empty, software_hmac(&[0; 32], b""));
    let big = custody.hmac(&k1, &[0xab; MAX_HMAC_MESSAGE]).unwrap();
    assert_eq!(custody.hmac(&k1, &[0xab; MAX_HMAC_MESSAGE]).unwrap(), big);
    assert!(matches!(
        custody.hmac(&k1, &[0xab; MAX_HMAC_MESSAGE + 1]),
        Err(TpmError::Tss(_))
    ));
    // Through the trait (what the authenticator calls) it is a Backend error.
    assert!(matches!(
        KeyCustody::hmac(&mut custody, &k1, &[0xab; MAX_HMAC_MESSAGE + 1]),
        Err(CustodyError::Backend(_))
    ));
    drop(custody);

    // A new process (new primary, new session) with the stored vault and blobs.
    for _ in 0..2 {
        let mut again = tpm.open();
        assert!(matches!(again.hmac(&k1, &m1), Err(TpmError::Locked)));
        KeyCustody::unlock(&mut again, &vault, &PIN).unwrap();
        assert_eq!(again.hmac(&k2, &m2).unwrap(), h22);
        assert_eq!(again.hmac(&k1, &m1).unwrap(), h11);
        assert_eq!(again.hmac(&k2, &m1).unwrap(), h21);
        assert_eq!(again.hmac(&k1, &m2).unwrap(), h12);
    }
}

#[test]
fn hmac_needs_the_pin_like_a_signature() {
    let tpm = Swtpm::start();
    let mut custody = tpm.open();
    let vault = custody.create_vault(&PIN).unwrap();
    let key = custody.create_hmac_key().unwrap();
    let expected = custody.hmac(&key, &digest(0)).unwrap();
    custody.lock();
    assert!(matches!(custody.create_hmac_key(), Err(TpmError::Locked)));
    assert!(matches!(custody.hmac(&key, &digest(0)), Err(TpmError::Locked)));

    assert!(matches!(
        custody.unlock(&vault, &WRONG),
        Err(TpmError::AuthFailed)
    ));
    assert_eq!(custody.pin_counts(&vault).unwrap().unwrap().failures, 1);
    assert!(matches!(custody.hmac(&key, &digest(0)), Err(TpmError::Locked)));
    assert!(matches!(custody.create_hmac_key(), Err(TpmError::Locked)));

    custody.unlock(&vault, &PIN).unwrap();
    assert_eq!(custody.hmac(&key, &digest(0)).unwrap(), expected);
    // After a PIN change the same key gives the same output.
    let prepared = custody.change_auth(&vault, &PIN, &NEW_PIN).unwrap();
    let vault = custody.commit_change(&prepared, &PIN, &NEW_PIN).unwrap();
    custody.lock();
    custody.unlock(&vault, &NEW_PIN).unwrap();
    assert_eq!(custody.hmac(&key, &digest(0)).unwrap(), expected);
}

#[test]
fn hmac_blobs_work_only_in_their_tpm_and_only_as_hmac_keys() {
    let (tpm_a, tpm_b) = (Swtpm::start(), Swtpm::start());
    let mut a = tpm_a.open();
    let vault = a.create_vault(&PIN).unwrap();
    let hmac = a.create_hmac_key().unwrap();
    let key = a.create_key(Algorithm::Es256).unwrap();

    // A credential key is not an HMAC key and vice versa: by tag, even when
    // the other kind is already loaded in the cache ...
    a.sign(&key.blob, &digest(0)).unwrap();
    assert!(matches!(
        a.hmac(&key.blob, &digest(0)),
        Err(TpmError::InvalidBlob)
    ));
    a.hmac(&hmac, &digest(0)).unwrap();
    assert!(matches!(a.sign(&hmac, &digest(0)), Err(TpmError::InvalidBlob)));
    // ... and by template, if someone relabels one as the other.
    let key_as_hmac = [b"LPH\x01", &key.blob[4..]].concat();
    let hmac_as_key = [b"LPK\x01", &hmac[4..]].concat();
    assert!(matches!(
        a.hmac(&key_as_hmac, &digest(0)),
        Err(TpmError::InvalidBlob)
    ));
    assert!(matches!(
        a.sign(&hmac_as_key, &digest(0)),
        Err(TpmError::InvalidBlob)
    ));
    let hmac_as_vault = VaultBlob::from_bytes(&[b"LPV\x01", &hmac[4..]].concat()).unwrap();
    assert!(matches!(
        a.unlock(&hmac_as_vault, &PIN),
        Err(TpmError::InvalidBlob)
    ));
    a.unlock(&vault, &PIN).unwrap();
    let out = a.hmac(&hmac, &digest(0)).unwrap();
    drop(a);

    let mut b = tpm_b.open();
    assert!(matches!(b.hmac(&hmac, &digest(0)), Err(TpmError::Locked)));
    // Its PIN index and counters are not in B, and its blobs do not load there.
    assert!(matches!(
        b.unlock(&vault, &PIN),
        Err(TpmError::Revoked | TpmError::InvalidBlob)
    ));
    // Even under an unlocked vault of its own with the same PIN, B refuses A's key.
    b.create_vault(&PIN).unwrap();
    assert!(matches!(b.hmac(&hmac, &digest(0)), Err(TpmError::InvalidBlob)));
    // B's own HMAC keys work, and are other keys.
    let own = b.create_hmac_key().unwrap();
    assert_ne!(b.hmac(&own, &digest(0)).unwrap(), out);

    let mut tampered = hmac.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let mut long = hmac.clone();
    long.push(0);
    for bad in [
        &tampered[..],
        &hmac[..10],
        &long[..],
        b"",
        b"LPH\x01\x00\x00\x00\x00",
    ] {
        assert!(matches!(b.hmac(bad, &digest(0)), Err(TpmError::InvalidBlob)));
    }
    assert!(b.is_unlocked());
}

#[test]
fn signatures_and_hmacs_interleave_within_swtpm_three_slots() {
    let tpm = Swtpm::start();
    let mut custody = tpm.open();
    assert_eq!(custody.describe().unwrap().key_cache_size, 1);
    custody.create_vault(&PIN).unwrap();
    let keys: Vec<_> = (0..3)
        .map(|_| custody.create_key(Algorithm::Es256).unwrap())
        .collect();
    let hmacs: Vec<_> = (0..3).map(|_| custody.create_hmac_key().unwrap()).collect();
    let expected: Vec<_> = hmacs
        .iter()
        .map(|h| custody.hmac(h, &digest(42)).unwrap())
        .collect();
    for n in 0..30u32 {
        let i = n as usize % 3;
        let sig = custody.sign(&keys[i].blob, &digest(n)).expect("no 0x902");
        verify(&keys[i].public, &digest(n), &sig);
        let j = (n as usize / 3) % 3;
        assert_eq!(
            custody.hmac(&hmacs[j], &digest(42)).expect("no 0x902"),
            expected[j]
        );
    }
    // Creating either kind with a full cache, interleaved with use.
    for n in 0..4u32 {
        let h = custody
            .create_hmac_key()
            .expect("create HMAC key with a full cache");
        custody.hmac(&h, &digest(n)).unwrap();
        let key = custody
            .create_key(Algorithm::Es256)
            .expect("create key with a full cache");
        verify(
            &key.public,
            &digest(n),
            &custody.sign(&key.blob, &digest(n)).unwrap(),
        );
        let i = n as usize % 3;
        assert_eq!(custody.hmac(&hmacs[i], &digest(42)).unwrap(), expected[i]);
    }
    // The same HMAC key over and over does not leak slots.
    for _ in 0..10 {
        assert_eq!(custody.hmac(&hmacs[0], &digest(42)).unwrap(), expected[0]);
    }
    custody.lock();
}

#[test]
fn hmac_outputs_never_cross_the_bus_in_clear() {
    let tpm = Swtpm::start();
    let sniffer = Sniffer::start(&tpm);
    let mut custody = TpmCustody::open(&sniffer.tcti()).unwrap();
    custody.create_vault(&digest(1111)).unwrap();
    let key = custody.create_key(Algorithm::Es256).unwrap();
    let hmac = custody.create_hmac_key().unwrap();
    let (salt, signed) = (digest(4444), digest(5555));
    let outputs: Vec<_> = (0..3).map(|_| custody.hmac(&hmac, &salt).unwrap()).collect();
    custody.sign(&key.blob, &signed).unwrap();
    drop(custody);

    // (We hash the message; the TPM is sent its SHA-256.)
    let signed: [u8; 32] = {
        use sha2::Digest;
        sha2::Sha256::digest(signed).into()
    };
    assert!(
        sniffer.saw(&signed),
        "sniffer sees nothing: the test would prove nothing"
    );
    // Responses are recorded too: the public key comes back from TPM2_Create in clear.
    assert!(
        matches!(&key.public, PublicKey::Ec2 { x, .. } if sniffer.saw(x)),
        "sniffer sees no responses: the test would prove nothing"
    );
    // TPM2_HMAC goes through the salted session with parameter encryption:
    // neither the output (the hmac-secret) nor the salt travels in clear.
    assert!(
        !sniffer.saw(&outputs[0][..16]),
        "an HMAC output crossed the bus in clear"
    );
    assert!(
        !sniffer.saw(&salt[..16]),
        "the HMAC message crossed the bus in clear"
    );
}

#[test]
fn a_killed_owner_leaves_nothing_that_blocks_the_next_start() {
    let tpm = Swtpm::start();
    let mut first = tpm.open();
    let vault = first.create_vault(&PIN).unwrap();
    let key = first.create_key(Algorithm::Es256).unwrap();
    first.sign(&key.blob, &digest(0)).unwrap();
    // Like SIGKILL: no Drop, nothing flushed. swtpm has no resource manager,
    // so primary, vault, key and session stay loaded in its 3 slots.
    std::mem::forget(first);
    let mut second = tpm.open();
    TpmCustody::unlock(&mut second, &vault, &PIN).unwrap();
    let sig = second.sign(&key.blob, &digest(1)).unwrap();
    verify(&key.public, &digest(1), &sig);
}
