use super::*;
use std::collections::HashMap;

const NONCE: [u8; 8] = [0xca, 0x4f, 0x34, 0x1a, 0x10, 0x96, 0xf2, 0xc3];

/// The host side, written independently of `frame` the way python-fido2's
/// `_do_call` does it, so the device is not only checked against itself.
fn host_frames(cid: u32, cmd: u8, declared_len: usize, payload: &[u8]) -> Vec<[u8; 64]> {
    let mut reports = Vec::new();
    let mut r = [0u8; 64];
    r[..4].copy_from_slice(&cid.to_be_bytes());
    r[4] = 0x80 | cmd;
    r[5] = (declared_len >> 8) as u8;
    r[6] = declared_len as u8;
    let n = payload.len().min(57);
    r[7..7 + n].copy_from_slice(&payload[..n]);
    reports.push(r);
    let mut rest = &payload[n..];
    let mut seq = 0u8;
    while !rest.is_empty() {
        let mut r = [0u8; 64];
        r[..4].copy_from_slice(&cid.to_be_bytes());
        r[4] = seq & 0x7f;
        let n = rest.len().min(59);
        r[5..5 + n].copy_from_slice(&rest[..n]);
        reports.push(r);
        rest = &rest[n..];
        seq = seq.wrapping_add(1);
    }
    reports
}

fn send_msg(dev: &mut Ctaphid, cid: u32, cmd: u8, payload: &[u8], now: Millis) -> Vec<Event> {
    host_frames(cid, cmd, payload.len(), payload)
        .iter()
        .flat_map(|r| dev.handle_report(r, now))
        .collect()
}

fn one(dev: &mut Ctaphid, report: [u8; 64], now: Millis) -> Vec<Event> {
    dev.handle_report(&report, now)
}

/// A raw init packet with an arbitrary declared length.
fn init_pkt(cid: u32, cmd: u8, len: u16, data: &[u8]) -> [u8; 64] {
    let mut r = [0u8; 64];
    r[..4].copy_from_slice(&cid.to_be_bytes());
    r[4] = 0x80 | cmd;
    r[5..7].copy_from_slice(&len.to_be_bytes());
    r[7..7 + data.len()].copy_from_slice(data);
    r
}

fn cont_pkt(cid: u32, seq: u8, data: &[u8]) -> [u8; 64] {
    let mut r = [0u8; 64];
    r[..4].copy_from_slice(&cid.to_be_bytes());
    r[4] = seq;
    r[5..5 + data.len()].copy_from_slice(data);
    r
}

/// Reassembles the device's reports into (cid, cmd, payload), checking
/// sequence numbers and zero padding as a strict host would.
fn messages(events: &[Event]) -> Vec<(u32, u8, Vec<u8>)> {
    let mut partial: HashMap<u32, (u8, usize, Vec<u8>, u8)> = HashMap::new();
    let mut done = Vec::new();
    for e in events {
        let Event::Send { cid, report } = e else {
            continue;
        };
        assert_eq!(u32::from_be_bytes(report[..4].try_into().unwrap()), *cid);
        if report[4] & 0x80 != 0 {
            assert!(!partial.contains_key(cid), "new message before the last ended");
            let len = u16::from_be_bytes([report[5], report[6]]) as usize;
            let n = len.min(57);
            assert!(report[7 + n..].iter().all(|&b| b == 0), "padding not zero");
            let data = report[7..7 + n].to_vec();
            if data.len() == len {
                done.push((*cid, report[4] & 0x7f, data));
            } else {
                partial.insert(*cid, (report[4] & 0x7f, len, data, 0));
            }
        } else {
            let (cmd, len, mut data, seq) = partial.remove(cid).expect("stray continuation");
            assert_eq!(report[4], seq, "sequence");
            let n = (len - data.len()).min(59);
            assert!(report[5 + n..].iter().all(|&b| b == 0), "padding not zero");
            data.extend_from_slice(&report[5..5 + n]);
            if data.len() == len {
                done.push((*cid, cmd, data));
            } else {
                partial.insert(*cid, (cmd, len, data, seq + 1));
            }
        }
    }
    assert!(partial.is_empty(), "unfinished message");
    done
}

fn errors(events: &[Event]) -> Vec<(u32, u8)> {
    messages(events)
        .into_iter()
        .filter(|(_, c, _)| *c == cmd::ERROR)
        .map(|(cid, _, p)| (cid, p[0]))
        .collect()
}

fn requests(events: &[Event]) -> Vec<(u64, u32, u8, Vec<u8>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Request {
                txn,
                cid,
                cmd,
                payload,
            } => Some((*txn, *cid, *cmd, payload.clone())),
            _ => None,
        })
        .collect()
}

fn cancels(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Cancel { txn } => Some(*txn),
            _ => None,
        })
        .collect()
}

fn open(dev: &mut Ctaphid, now: Millis) -> u32 {
    let ev = send_msg(dev, BROADCAST_CID, cmd::INIT, &NONCE, now);
    let msgs = messages(&ev);
    assert_eq!(msgs.len(), 1, "{ev:?}");
    let (cid, c, p) = &msgs[0];
    assert_eq!((*cid, *c, p.len()), (BROADCAST_CID, cmd::INIT, 17));
    assert_eq!(&p[..8], &NONCE);
    u32::from_be_bytes(p[8..12].try_into().unwrap())
}

fn ping(dev: &mut Ctaphid, cid: u32, payload: &[u8], now: Millis) -> Vec<(u32, u8, Vec<u8>)> {
    messages(&send_msg(dev, cid, cmd::PING, payload, now))
}

/// Starts a CBOR request on `cid` and returns its txn.
fn start_request(dev: &mut Ctaphid, cid: u32, now: Millis) -> u64 {
    let ev = send_msg(dev, cid, cmd::CBOR, &[0x04], now);
    let reqs = requests(&ev);
    assert_eq!(reqs.len(), 1, "{ev:?}");
    assert_eq!(reqs[0].1, cid);
    reqs[0].0
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

// ---- framing ----

#[test]
fn frame_matches_an_independent_host_framer() {
    for len in [0, 1, 56, 57, 58, 116, 117, 1000, MAX_MSG_SIZE] {
        let p = pattern(len);
        assert_eq!(
            frame(0x1234_5678, cmd::PING, &p).unwrap(),
            host_frames(0x1234_5678, cmd::PING, len, &p),
            "len {len}"
        );
    }
}

#[test]
fn frame_packet_counts_and_limit() {
    assert_eq!(frame(1, cmd::PING, &[]).unwrap().len(), 1);
    assert_eq!(frame(1, cmd::PING, &[0; 57]).unwrap().len(), 1);
    assert_eq!(frame(1, cmd::PING, &[0; 58]).unwrap().len(), 2);
    let max = frame(1, cmd::PING, &[0; MAX_MSG_SIZE]).unwrap();
    assert_eq!(max.len(), 129);
    assert_eq!(max[128][4], 127);
    assert!(frame(1, cmd::PING, &[0; MAX_MSG_SIZE + 1]).is_none());
}

#[test]
fn reports_of_the_wrong_size_are_ignored() {
    let mut dev = Ctaphid::new();
    let good = host_frames(BROADCAST_CID, cmd::INIT, 8, &NONCE)[0];
    assert!(dev.handle_report(&good[..63], 0).is_empty());
    let mut long = good.to_vec();
    long.push(0);
    assert!(dev.handle_report(&long, 0).is_empty());
    assert!(dev.handle_report(&[], 0).is_empty());
    // A report ID byte in front (65 bytes) is not ours to strip.
    let mut prefixed = vec![0u8];
    prefixed.extend_from_slice(&good);
    assert!(dev.handle_report(&prefixed, 0).is_empty());
    assert_eq!(dev.handle_report(&good, 0).len(), 1);
}

// ---- INIT ----

#[test]
fn init_allocates_unique_channels_and_echoes_the_nonce() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let b = open(&mut dev, 0);
    assert_ne!(a, b);
    for c in [a, b] {
        assert_ne!(c, 0);
        assert_ne!(c, BROADCAST_CID);
    }
}

#[test]
fn init_reply_layout() {
    let mut dev = Ctaphid::new();
    let ev = send_msg(&mut dev, BROADCAST_CID, cmd::INIT, &NONCE, 0);
    assert_eq!(ev.len(), 1);
    let Event::Send { cid, report } = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(*cid, BROADCAST_CID);
    assert_eq!(&report[..7], &[0xff, 0xff, 0xff, 0xff, 0x86, 0x00, 0x11]);
    assert_eq!(&report[7..15], &NONCE);
    let new_cid = u32::from_be_bytes(report[15..19].try_into().unwrap());
    assert_ne!(new_cid, 0);
    assert_eq!(report[19], 2, "protocol version");
    assert_eq!(&report[20..23], &[0, 1, 0], "device version");
    assert_eq!(report[23], 0x01 | 0x04 | 0x08, "WINK | CBOR | NMSG");
    assert!(report[24..].iter().all(|&b| b == 0));
}

#[test]
fn device_version_follows_firmware_version() {
    let fw = crate::FIRMWARE_VERSION;
    assert_eq!(u32::from(DEVICE_VERSION[0]), fw / 10_000);
    assert_eq!(u32::from(DEVICE_VERSION[1]), fw / 100 % 100);
    assert_eq!(u32::from(DEVICE_VERSION[2]), fw % 100);
}

#[test]
fn init_with_wrong_length_is_invalid_len() {
    let mut dev = Ctaphid::new();
    for len in [0u16, 7, 9, 57, 100] {
        let ev = one(&mut dev, init_pkt(BROADCAST_CID, cmd::INIT, len, &NONCE), 0);
        assert_eq!(errors(&ev), vec![(BROADCAST_CID, err::INVALID_LEN)], "len {len}");
    }
    assert!(dev.channels.is_empty(), "no channel allocated by a bad INIT");
    // The continuation of a declared-long INIT is ignored silently.
    assert!(one(&mut dev, cont_pkt(BROADCAST_CID, 0, &[1]), 0).is_empty());
}

#[test]
fn init_on_an_unknown_or_reserved_channel_is_invalid_channel() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    for cid in [0, a + 1000] {
        let ev = send_msg(&mut dev, cid, cmd::INIT, &NONCE, 0);
        assert_eq!(errors(&ev), vec![(cid, err::INVALID_CHANNEL)]);
    }
}

#[test]
fn resync_keeps_the_channel_and_drops_a_partial_message() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let b = open(&mut dev, 0);
    // A starts a two-packet PING, then resyncs.
    assert!(one(&mut dev, init_pkt(a, cmd::PING, 100, &[1; 57]), 0).is_empty());
    let ev = send_msg(&mut dev, a, cmd::INIT, &NONCE, 10);
    let msgs = messages(&ev);
    assert_eq!(msgs.len(), 1);
    let (cid, c, p) = &msgs[0];
    assert_eq!((*cid, *c), (a, cmd::INIT));
    assert_eq!(&p[..8], &NONCE);
    assert_eq!(u32::from_be_bytes(p[8..12].try_into().unwrap()), a);
    assert!(cancels(&ev).is_empty());
    // The stale continuation is ignored and the device is free.
    assert!(one(&mut dev, cont_pkt(a, 0, &[1; 59]), 20).is_empty());
    assert_eq!(ping(&mut dev, b, b"hi", 20), vec![(b, cmd::PING, b"hi".to_vec())]);
    assert_eq!(ping(&mut dev, a, b"yo", 20), vec![(a, cmd::PING, b"yo".to_vec())]);
    assert_eq!(dev.next_deadline(), None);
}

#[test]
fn init_is_answered_while_another_channel_is_busy() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let b = open(&mut dev, 0);
    let _txn = start_request(&mut dev, a, 0);
    let c = open(&mut dev, 10);
    assert_ne!(c, a);
    let ev = send_msg(&mut dev, b, cmd::INIT, &NONCE, 10);
    assert_eq!(messages(&ev)[0].1, cmd::INIT);
    assert!(cancels(&ev).is_empty(), "resync of B does not touch A's request");
    assert!(dev.busy());
    // And while another channel is mid-message.
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    assert!(one(&mut dev, init_pkt(a, cmd::PING, 100, &[1; 57]), 0).is_empty());
    let _ = open(&mut dev, 1);
    let ev = one(&mut dev, cont_pkt(a, 0, &[2; 59]), 2);
    assert_eq!(messages(&ev)[0].2.len(), 100, "A's message survived");
}

// ---- channel checks ----

#[test]
fn commands_on_reserved_or_unknown_channels_are_invalid_channel() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    for c in [cmd::PING, cmd::CBOR, cmd::MSG, cmd::WINK, cmd::LOCK, 0x55] {
        for cid in [0, BROADCAST_CID, a.wrapping_add(7)] {
            let ev = send_msg(&mut dev, cid, c, &[1], 0);
            assert_eq!(
                errors(&ev),
                vec![(cid, err::INVALID_CHANNEL)],
                "cmd {c:#x} cid {cid:#x}"
            );
        }
    }
    assert!(!dev.busy());
}

#[test]
fn cancel_is_never_answered() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    for cid in [0, BROADCAST_CID, a, a + 1] {
        assert!(send_msg(&mut dev, cid, cmd::CANCEL, &[], 0).is_empty());
    }
}

// ---- PING ----

#[test]
fn ping_round_trips_at_every_boundary() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    for len in [
        0,
        1,
        57,
        58,
        59,
        116,
        117,
        118,
        1024,
        MAX_MSG_SIZE - 1,
        MAX_MSG_SIZE,
    ] {
        let p = pattern(len);
        let ev = send_msg(&mut dev, a, cmd::PING, &p, 0);
        let expected_reports = if len <= 57 { 1 } else { 1 + (len - 57).div_ceil(59) };
        assert_eq!(ev.len(), expected_reports, "len {len}");
        assert_eq!(messages(&ev), vec![(a, cmd::PING, p)], "len {len}");
        assert!(!dev.busy());
        assert_eq!(dev.next_deadline(), None);
    }
}

#[test]
fn ping_ignores_bytes_past_the_declared_length() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let ev = one(&mut dev, init_pkt(a, cmd::PING, 3, &[9; 57]), 0);
    assert_eq!(messages(&ev), vec![(a, cmd::PING, vec![9, 9, 9])]);
    // Nonzero padding in a continuation is accepted and cut off.
    assert!(one(&mut dev, init_pkt(a, cmd::PING, 60, &[1; 57]), 0).is_empty());
    let ev = one(&mut dev, cont_pkt(a, 0, &[2; 59]), 0);
    let mut want = vec![1; 57];
    want.extend([2, 2, 2]);
    assert_eq!(messages(&ev), vec![(a, cmd::PING, want)]);
}

#[test]
fn declared_length_over_the_maximum_is_invalid_len() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    for (c, len) in [(cmd::PING, 7610u16), (cmd::CBOR, 7610), (cmd::MSG, 0xffff)] {
        let ev = one(&mut dev, init_pkt(a, c, len, &[0; 57]), 0);
        assert_eq!(errors(&ev), vec![(a, err::INVALID_LEN)]);
        assert!(dev.assembly.is_none());
    }
    assert!(one(&mut dev, cont_pkt(a, 0, &[0; 59]), 0).is_empty());
    assert_eq!(ping(&mut dev, a, &[5], 0), vec![(a, cmd::PING, vec![5])]);
}

#[test]
fn a_smaller_maximum_is_the_limit() {
    let mut dev = Ctaphid::with_max_message(1886);
    let a = open(&mut dev, 0);
    let ev = one(&mut dev, init_pkt(a, cmd::CBOR, 1887, &[0; 57]), 0);
    assert_eq!(errors(&ev), vec![(a, err::INVALID_LEN)]);
    let p = pattern(1886);
    assert_eq!(
        messages(&send_msg(&mut dev, a, cmd::PING, &p, 0)),
        vec![(a, cmd::PING, p)]
    );
    // Never more than CTAPHID can frame.
    let mut dev = Ctaphid::with_max_message(usize::MAX);
    let a = open(&mut dev, 0);
    let ev = one(&mut dev, init_pkt(a, cmd::PING, 7610, &[0; 57]), 0);
    assert_eq!(errors(&ev), vec![(a, err::INVALID_LEN)]);
}

// ---- sequencing ----

#[test]
fn wrong_sequence_is_invalid_seq_and_drops_the_message() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let frames = host_frames(a, cmd::PING, 200, &pattern(200));
    assert_eq!(frames.len(), 4);
    assert!(one(&mut dev, frames[0], 0).is_empty());
    assert!(one(&mut dev, frames[1], 0).is_empty());
    // Skip seq 1.
    let ev = one(&mut dev, frames[3], 0);
    assert_eq!(errors(&ev), vec![(a, err::INVALID_SEQ)]);
    assert!(dev.assembly.is_none());
    // The rest is now spurious.
    assert!(one(&mut dev, frames[2], 0).is_empty());
    assert_eq!(dev.next_deadline(), None);
    // A repeated sequence number is wrong too.
    assert!(one(&mut dev, frames[0], 0).is_empty());
    assert!(one(&mut dev, frames[1], 0).is_empty());
    let ev = one(&mut dev, frames[1], 0);
    assert_eq!(errors(&ev), vec![(a, err::INVALID_SEQ)]);
}

#[test]
fn spurious_continuations_are_ignored() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    for cid in [0, BROADCAST_CID, a, a + 1] {
        for seq in [0u8, 1, 127] {
            assert!(one(&mut dev, cont_pkt(cid, seq, &[1; 59]), 0).is_empty());
        }
    }
    // Also on a channel other than the one assembling.
    let b = open(&mut dev, 0);
    assert!(one(&mut dev, init_pkt(a, cmd::PING, 100, &[1; 57]), 0).is_empty());
    assert!(one(&mut dev, cont_pkt(b, 0, &[1; 59]), 0).is_empty());
    assert_eq!(
        messages(&one(&mut dev, cont_pkt(a, 0, &[1; 59]), 0))[0].2,
        vec![1; 100]
    );
}

#[test]
fn new_message_on_the_assembling_channel_is_invalid_seq() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    assert!(one(&mut dev, init_pkt(a, cmd::PING, 100, &[1; 57]), 0).is_empty());
    let ev = one(&mut dev, init_pkt(a, cmd::PING, 2, &[3, 4]), 0);
    assert_eq!(errors(&ev), vec![(a, err::INVALID_SEQ)]);
    assert!(dev.assembly.is_none());
    assert!(one(&mut dev, cont_pkt(a, 0, &[1; 59]), 0).is_empty());
    assert_eq!(ping(&mut dev, a, &[7], 0), vec![(a, cmd::PING, vec![7])]);
}

#[test]
fn cancel_during_assembly_drops_it_silently() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    assert!(one(&mut dev, init_pkt(a, cmd::CBOR, 100, &[1; 57]), 0).is_empty());
    assert!(send_msg(&mut dev, a, cmd::CANCEL, &[], 0).is_empty());
    assert!(dev.assembly.is_none());
    assert!(one(&mut dev, cont_pkt(a, 0, &[1; 59]), 0).is_empty());
    assert!(!dev.busy());
}

// ---- one transaction at a time ----

#[test]
fn other_channel_is_busy_while_a_message_is_assembling() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let b = open(&mut dev, 0);
    let p = pattern(150);
    let frames = host_frames(a, cmd::PING, p.len(), &p);
    assert!(one(&mut dev, frames[0], 0).is_empty());
    let ev = send_msg(&mut dev, b, cmd::PING, &[1], 1);
    assert_eq!(errors(&ev), vec![(b, err::CHANNEL_BUSY)]);
    let ev = send_msg(&mut dev, b, cmd::CBOR, &[1], 1);
    assert_eq!(errors(&ev), vec![(b, err::CHANNEL_BUSY)]);
    // B's CANCEL does nothing to A.
    assert!(send_msg(&mut dev, b, cmd::CANCEL, &[], 1).is_empty());
    let ev: Vec<Event> = frames[1..].iter().flat_map(|f| dev.handle_report(f, 2)).collect();
    assert_eq!(messages(&ev), vec![(a, cmd::PING, p)]);
    assert_eq!(ping(&mut dev, b, &[1], 3), vec![(b, cmd::PING, vec![1])]);
}

#[test]
fn device_is_busy_while_a_request_is_outstanding() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let b = open(&mut dev, 0);
    let txn = start_request(&mut dev, a, 0);
    assert!(dev.busy());
    for (cid, c) in [
        (b, cmd::PING),
        (b, cmd::CBOR),
        (a, cmd::CBOR),
        (a, cmd::PING),
        (a, cmd::MSG),
    ] {
        let ev = send_msg(&mut dev, cid, c, &[1], 5);
        assert_eq!(errors(&ev), vec![(cid, err::CHANNEL_BUSY)]);
    }
    // A long request from B is refused at its first packet; its tail is ignored.
    let ev = send_msg(&mut dev, b, cmd::CBOR, &pattern(300), 5);
    assert_eq!(errors(&ev), vec![(b, err::CHANNEL_BUSY)]);
    let ev = dev.respond(txn, cmd::CBOR, &[0x00, 0xa0], 6);
    assert_eq!(messages(&ev), vec![(a, cmd::CBOR, vec![0x00, 0xa0])]);
    assert!(!dev.busy());
    assert_eq!(ping(&mut dev, b, &[1], 7), vec![(b, cmd::PING, vec![1])]);
}

// ---- CBOR / MSG ----

#[test]
fn cbor_request_and_multi_packet_response() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let body = pattern(300);
    let ev = send_msg(&mut dev, a, cmd::CBOR, &body, 0);
    let reqs = requests(&ev);
    assert_eq!(reqs.len(), 1);
    let (txn, cid, c, payload) = reqs[0].clone();
    assert_eq!((cid, c, payload), (a, cmd::CBOR, body));
    assert!(ev.iter().all(|e| !matches!(e, Event::Send { .. })));
    let answer = pattern(2000);
    let ev = dev.respond(txn, cmd::CBOR, &answer, 10);
    assert_eq!(messages(&ev), vec![(a, cmd::CBOR, answer)]);
    assert!(!dev.busy());
    assert_eq!(dev.next_deadline(), None);
    // A second answer to the same txn goes nowhere.
    assert!(dev.respond(txn, cmd::CBOR, &[0], 11).is_empty());
}

#[test]
fn txns_are_distinct() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let t1 = start_request(&mut dev, a, 0);
    dev.respond(t1, cmd::CBOR, &[0], 0);
    let t2 = start_request(&mut dev, a, 0);
    assert_ne!(t1, t2);
}

/// §11.2.9.1.1 (MSG) and §11.2.9.1.2 (CBOR): BCNT is 1..(n + 1), so a
/// message without even the command byte is refused by the framing
/// (ERR_INVALID_LEN); the application never sees it, and the device stays
/// idle.
#[test]
fn a_cbor_or_msg_message_without_a_command_byte_is_invalid_len() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    for c in [cmd::MSG, cmd::CBOR] {
        let ev = send_msg(&mut dev, a, c, &[], 0);
        assert_eq!(errors(&ev), vec![(a, err::INVALID_LEN)], "cmd {c:#x}");
        assert!(requests(&ev).is_empty());
        assert!(!dev.busy());
        // One byte is a request.
        let ev = send_msg(&mut dev, a, c, &[0x04], 1);
        let reqs = requests(&ev);
        assert_eq!(reqs.len(), 1);
        let ev = dev.respond(reqs[0].0, c, &[0x6d, 0x00], 2);
        assert_eq!(messages(&ev), vec![(a, c, vec![0x6d, 0x00])]);
    }
    // PING may be empty (§11.2.9.1.4: BCNT 0..n).
    assert_eq!(ping(&mut dev, a, &[], 3), vec![(a, cmd::PING, vec![])]);
}

#[test]
fn respond_to_unknown_txn_is_ignored() {
    let mut dev = Ctaphid::new();
    assert!(dev.respond(42, cmd::CBOR, &[0], 0).is_empty());
    let a = open(&mut dev, 0);
    let txn = start_request(&mut dev, a, 0);
    assert!(dev.respond(txn + 1, cmd::CBOR, &[0], 0).is_empty());
    assert!(dev.busy());
}

#[test]
fn oversize_response_becomes_err_other() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let txn = start_request(&mut dev, a, 0);
    let ev = dev.respond(txn, cmd::CBOR, &vec![0; MAX_MSG_SIZE + 1], 0);
    assert_eq!(errors(&ev), vec![(a, err::OTHER)]);
    assert!(!dev.busy());
}

#[test]
fn respond_strips_a_stray_init_bit_from_cmd() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let txn = start_request(&mut dev, a, 0);
    let ev = dev.respond(txn, 0x80 | cmd::CBOR, &[0], 0);
    assert_eq!(messages(&ev), vec![(a, cmd::CBOR, vec![0])]);
}

// ---- CANCEL ----

#[test]
fn cancel_on_the_busy_channel_emits_cancel_once_and_no_reply() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let txn = start_request(&mut dev, a, 0);
    let ev = send_msg(&mut dev, a, cmd::CANCEL, &[], 10);
    assert_eq!(ev, vec![Event::Cancel { txn }]);
    // python-fido2 repeats CANCEL after every keepalive; the app hears it once.
    assert!(send_msg(&mut dev, a, cmd::CANCEL, &[], 20).is_empty());
    // Still outstanding: keepalives continue and the answer is delivered.
    assert!(dev.busy());
    assert_eq!(
        messages(&dev.poll(100, KeepaliveStatus::Processing))[0].1,
        cmd::KEEPALIVE
    );
    let ev = dev.respond(txn, cmd::CBOR, &[0x2d], 120);
    assert_eq!(messages(&ev), vec![(a, cmd::CBOR, vec![0x2d])]);
}

#[test]
fn cancel_from_another_channel_or_when_idle_is_ignored() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let b = open(&mut dev, 0);
    assert!(send_msg(&mut dev, a, cmd::CANCEL, &[], 0).is_empty());
    let _txn = start_request(&mut dev, a, 0);
    assert!(send_msg(&mut dev, b, cmd::CANCEL, &[], 0).is_empty());
    assert!(send_msg(&mut dev, BROADCAST_CID, cmd::CANCEL, &[], 0).is_empty());
    assert!(dev.busy());
}

// ---- resync of a running request ----

#[test]
fn resync_aborts_the_running_request() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let b = open(&mut dev, 0);
    let txn = start_request(&mut dev, a, 0);
    let ev = send_msg(&mut dev, a, cmd::INIT, &NONCE, 10);
    assert_eq!(
        ev.first(),
        Some(&Event::Cancel { txn }),
        "cancel before the reply"
    );
    assert_eq!(messages(&ev).len(), 1);
    // No keepalives for an abandoned request.
    assert!(dev.poll(500, KeepaliveStatus::Processing).is_empty());
    assert_eq!(dev.next_deadline(), None);
    // Framing-only commands work at once...
    assert_eq!(ping(&mut dev, b, &[1], 20), vec![(b, cmd::PING, vec![1])]);
    // ...but the application is still busy with the old request.
    assert!(dev.busy());
    let ev = send_msg(&mut dev, a, cmd::CBOR, &[4], 20);
    assert_eq!(errors(&ev), vec![(a, err::CHANNEL_BUSY)]);
    // Its late answer is swallowed, and then the device takes requests again.
    assert!(dev.respond(txn, cmd::CBOR, &[0], 30).is_empty());
    assert!(!dev.busy());
    let txn2 = start_request(&mut dev, a, 40);
    assert_ne!(txn2, txn);
    assert!(dev.respond(txn, cmd::CBOR, &[0], 50).is_empty());
    assert_eq!(messages(&dev.respond(txn2, cmd::CBOR, &[0], 50)).len(), 1);
}

#[test]
fn resync_after_cancel_does_not_cancel_twice() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let txn = start_request(&mut dev, a, 0);
    assert_eq!(cancels(&send_msg(&mut dev, a, cmd::CANCEL, &[], 1)), vec![txn]);
    assert!(cancels(&send_msg(&mut dev, a, cmd::INIT, &NONCE, 2)).is_empty());
    assert!(dev.respond(txn, cmd::CBOR, &[0x2d], 3).is_empty());
}

// ---- §11.2 edge cases, to the letter ----

/// §11.2.4 and §11.2.9.1.3: channels come from INIT on the broadcast
/// channel. An initialisation packet on a channel that was never
/// allocated (or was forgotten at a power cycle) is answered
/// ERR_INVALID_CHANNEL on that channel, whatever the device is doing;
/// continuation packets and CANCEL there are ignored (§11.2.5.4,
/// §11.2.9.1.5), and nothing the device was doing is disturbed.
#[test]
fn a_never_allocated_channel_gets_invalid_channel_whatever_the_device_is_doing() {
    let stranger: u32 = 0x1234_5678;
    let probe = |dev: &mut Ctaphid, now: Millis| {
        for c in [
            cmd::INIT,
            cmd::PING,
            cmd::CBOR,
            cmd::MSG,
            cmd::LOCK,
            cmd::WINK,
            0x55,
        ] {
            let data: &[u8] = if c == cmd::INIT { &NONCE } else { &[1] };
            let ev = send_msg(dev, stranger, c, data, now);
            assert_eq!(ev.len(), 1, "cmd {c:#x}: {ev:?}");
            assert_eq!(errors(&ev), vec![(stranger, err::INVALID_CHANNEL)], "cmd {c:#x}");
        }
        assert!(one(dev, cont_pkt(stranger, 0, &[1]), now).is_empty());
        assert!(send_msg(dev, stranger, cmd::CANCEL, &[], now).is_empty());
    };
    let mut dev = Ctaphid::new();
    probe(&mut dev, 0);
    assert!(!dev.channels.contains(&stranger));

    // While another channel is mid-message: its message survives.
    let a = open(&mut dev, 0);
    assert!(one(&mut dev, init_pkt(a, cmd::PING, 100, &[1; 57]), 0).is_empty());
    probe(&mut dev, 1);
    let ev = one(&mut dev, cont_pkt(a, 0, &[2; 59]), 2);
    assert_eq!(messages(&ev)[0].2.len(), 100);

    // While a request runs, and while a lock is held.
    let txn = start_request(&mut dev, a, 3);
    probe(&mut dev, 4);
    assert!(cancels(&send_msg(&mut dev, a, cmd::CANCEL, &[], 5)) == vec![txn]);
    dev.respond(txn, cmd::CBOR, &[0x2d], 6);
    assert!(messages(&send_msg(&mut dev, a, cmd::LOCK, &[5], 7)).len() == 1);
    probe(&mut dev, 8);

    // A channel from before a power cycle is a stranger now.
    dev.power_cycle();
    let ev = send_msg(&mut dev, a, cmd::PING, &[1], 9);
    assert_eq!(errors(&ev), vec![(a, err::INVALID_CHANNEL)]);
    let ev = send_msg(&mut dev, 0, cmd::INIT, &NONCE, 9);
    assert_eq!(errors(&ev), vec![(0, err::INVALID_CHANNEL)], "CID 0 is reserved");
}

/// §11.2.5.3 and §11.2.9.1.3: a new INIT while a transaction is pending.
/// On the transaction's own channel it aborts the transaction (and says
/// so to the application), even when the INIT itself is malformed and
/// gets ERR_INVALID_LEN; on another allocated channel it resynchronises
/// only that one; on the broadcast channel it allocates a new channel.
/// The last two are answered at once and leave the transaction alone:
/// a client needs a channel before it can even hear ERR_CHANNEL_BUSY.
#[test]
fn init_while_a_transaction_is_pending_on_each_kind_of_channel() {
    // Pending = a message still arriving, or a request being processed.
    for processing in [false, true] {
        let start = |dev: &mut Ctaphid, a: u32| -> Option<u64> {
            if processing {
                Some(start_request(dev, a, 0))
            } else {
                assert!(one(dev, init_pkt(a, cmd::PING, 100, &[1; 57]), 0).is_empty());
                None
            }
        };
        let still_pending = |dev: &mut Ctaphid, a: u32, txn: Option<u64>, now: Millis| match txn {
            Some(txn) => {
                assert!(dev.busy());
                let ev = dev.respond(txn, cmd::CBOR, &[0], now);
                assert_eq!(messages(&ev), vec![(a, cmd::CBOR, vec![0])]);
            }
            None => {
                let ev = one(dev, cont_pkt(a, 0, &[2; 59]), now);
                assert_eq!(messages(&ev)[0].2.len(), 100, "the message survived");
            }
        };

        // Another allocated channel.
        let mut dev = Ctaphid::new();
        let a = open(&mut dev, 0);
        let b = open(&mut dev, 0);
        let txn = start(&mut dev, a);
        let ev = send_msg(&mut dev, b, cmd::INIT, &NONCE, 1);
        let msgs = messages(&ev);
        assert_eq!(msgs.len(), 1, "{ev:?}");
        assert_eq!((msgs[0].0, msgs[0].1), (b, cmd::INIT));
        assert_eq!(u32::from_be_bytes(msgs[0].2[8..12].try_into().unwrap()), b);
        assert!(cancels(&ev).is_empty());
        let ev = send_msg(&mut dev, b, cmd::PING, &[1], 2);
        assert_eq!(errors(&ev), vec![(b, err::CHANNEL_BUSY)], "still busy for B");
        still_pending(&mut dev, a, txn, 3);

        // The broadcast channel.
        let mut dev = Ctaphid::new();
        let a = open(&mut dev, 0);
        let txn = start(&mut dev, a);
        let ev = send_msg(&mut dev, BROADCAST_CID, cmd::INIT, &NONCE, 1);
        let msgs = messages(&ev);
        assert_eq!((msgs.len(), msgs[0].0, msgs[0].1), (1, BROADCAST_CID, cmd::INIT));
        let c = u32::from_be_bytes(msgs[0].2[8..12].try_into().unwrap());
        assert!(c != a && dev.channels.contains(&c));
        assert!(cancels(&ev).is_empty());
        still_pending(&mut dev, a, txn, 3);

        // The transaction's own channel: aborted, with a good INIT or a bad one.
        for len in [8u16, 0, 7, 9] {
            let mut dev = Ctaphid::new();
            let a = open(&mut dev, 0);
            let b = open(&mut dev, 0);
            let txn = start(&mut dev, a);
            let ev = one(&mut dev, init_pkt(a, cmd::INIT, len, &NONCE), 1);
            assert_eq!(cancels(&ev), txn.into_iter().collect::<Vec<_>>(), "len {len}");
            if let Some(txn) = txn {
                assert_eq!(
                    ev.first(),
                    Some(&Event::Cancel { txn }),
                    "cancel before the reply"
                );
            }
            if len == 8 {
                assert_eq!(messages(&ev).last().map(|m| (m.0, m.1)), Some((a, cmd::INIT)));
            } else {
                assert_eq!(errors(&ev), vec![(a, err::INVALID_LEN)], "len {len}");
            }
            // What was pending is gone: no continuation revives it, no
            // keepalive or answer comes for it.
            assert!(one(&mut dev, cont_pkt(a, 0, &[2; 59]), 2).is_empty());
            assert!(dev.poll(500, KeepaliveStatus::Processing).is_empty());
            if let Some(txn) = txn {
                assert!(dev.respond(txn, cmd::CBOR, &[0], 501).is_empty());
            }
            assert!(!dev.busy());
            assert_eq!(ping(&mut dev, b, b"b", 502), vec![(b, cmd::PING, b"b".to_vec())]);
        }
    }
}

// ---- keepalive ----

#[test]
fn keepalive_cadence() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    assert_eq!(dev.next_deadline(), None);
    let txn = start_request(&mut dev, a, 1000);
    assert_eq!(dev.next_deadline(), Some(1000 + KEEPALIVE_INTERVAL_MS));
    assert!(dev.poll(1079, KeepaliveStatus::Processing).is_empty());
    let ev = dev.poll(1080, KeepaliveStatus::Processing);
    assert_eq!(ev.len(), 1);
    let Event::Send { cid, report } = &ev[0] else {
        panic!()
    };
    assert_eq!(*cid, a);
    assert_eq!(&report[4..8], &[0xbb, 0x00, 0x01, 0x01]);
    assert!(report[8..].iter().all(|&b| b == 0));
    assert!(dev.poll(1080, KeepaliveStatus::Processing).is_empty());
    assert_eq!(dev.next_deadline(), Some(1160));
    assert!(dev.poll(1159, KeepaliveStatus::UpNeeded).is_empty());
    let ev = dev.poll(1160, KeepaliveStatus::UpNeeded);
    assert_eq!(messages(&ev), vec![(a, cmd::KEEPALIVE, vec![2])]);
    // Never more than 100 ms apart when polled at the deadline, over a long wait.
    let mut last = 1160;
    let mut now = 1160;
    while now < 31_000 {
        now = dev.next_deadline().unwrap() + 3; // a little scheduling jitter
        let ev = dev.poll(now, KeepaliveStatus::UpNeeded);
        assert_eq!(ev.len(), 1);
        assert!(now - last <= 100, "gap {}", now - last);
        last = now;
    }
    dev.respond(txn, cmd::CBOR, &[0], now);
    assert!(dev.poll(now + 1000, KeepaliveStatus::Processing).is_empty());
    assert_eq!(dev.next_deadline(), None);
}

#[test]
fn keepalive_after_a_stall_is_not_a_burst() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let _ = start_request(&mut dev, a, 0);
    assert_eq!(dev.poll(5000, KeepaliveStatus::Processing).len(), 1);
    assert_eq!(dev.next_deadline(), Some(5000 + KEEPALIVE_INTERVAL_MS));
}

#[test]
fn no_keepalive_without_a_request() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    assert!(dev.poll(10_000, KeepaliveStatus::Processing).is_empty());
    assert!(one(&mut dev, init_pkt(a, cmd::CBOR, 100, &[1; 57]), 10_000).is_empty());
    assert!(
        dev.poll(10_100, KeepaliveStatus::Processing).is_empty(),
        "assembling is not processing"
    );
}

// ---- transaction timeout ----

#[test]
fn stalled_message_times_out_and_frees_the_device() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let b = open(&mut dev, 0);
    assert!(one(&mut dev, init_pkt(a, cmd::CBOR, 200, &[1; 57]), 100).is_empty());
    assert_eq!(dev.next_deadline(), Some(100 + TRANSACTION_TIMEOUT_MS));
    assert!(one(&mut dev, cont_pkt(a, 0, &[1; 59]), 700).is_empty());
    // The clock restarts with every continuation.
    assert_eq!(dev.next_deadline(), Some(700 + TRANSACTION_TIMEOUT_MS));
    assert!(dev
        .poll(700 + TRANSACTION_TIMEOUT_MS - 1, KeepaliveStatus::Processing)
        .is_empty());
    let ev = dev.poll(700 + TRANSACTION_TIMEOUT_MS, KeepaliveStatus::Processing);
    assert_eq!(errors(&ev), vec![(a, err::MSG_TIMEOUT)]);
    assert_eq!(dev.next_deadline(), None);
    assert!(one(&mut dev, cont_pkt(a, 1, &[1; 59]), 2000).is_empty());
    assert_eq!(ping(&mut dev, b, &[1], 2000), vec![(b, cmd::PING, vec![1])]);
}

#[test]
fn timeout_is_noticed_without_poll() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let b = open(&mut dev, 0);
    assert!(one(&mut dev, init_pkt(a, cmd::PING, 200, &[1; 57]), 0).is_empty());
    // B arrives after A's deadline: A is told, B is served.
    let ev = send_msg(&mut dev, b, cmd::PING, &[5], 5000);
    assert_eq!(
        messages(&ev),
        vec![(a, cmd::ERROR, vec![err::MSG_TIMEOUT]), (b, cmd::PING, vec![5])]
    );
    // A late continuation from A cannot revive its message.
    assert!(one(&mut dev, init_pkt(a, cmd::PING, 200, &[1; 57]), 6000).is_empty());
    let ev = one(&mut dev, cont_pkt(a, 0, &[1; 59]), 6000 + TRANSACTION_TIMEOUT_MS);
    assert_eq!(errors(&ev), vec![(a, err::MSG_TIMEOUT)]);
    assert!(dev.assembly.is_none());
}

#[test]
fn time_going_backwards_does_not_time_out_or_panic() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 1000);
    assert!(one(&mut dev, init_pkt(a, cmd::PING, 100, &[1; 57]), 1000).is_empty());
    assert!(dev.poll(0, KeepaliveStatus::Processing).is_empty());
    let ev = one(&mut dev, cont_pkt(a, 0, &[1; 59]), 0);
    assert_eq!(messages(&ev)[0].2.len(), 100);
    let a2 = open(&mut dev, u64::MAX);
    let _ = start_request(&mut dev, a2, u64::MAX);
    let _ = dev.poll(u64::MAX, KeepaliveStatus::Processing);
    assert_eq!(dev.next_deadline(), Some(u64::MAX));
}

// ---- LOCK ----

#[test]
fn lock_refuses_other_channels_until_it_expires() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let b = open(&mut dev, 0);
    let ev = send_msg(&mut dev, a, cmd::LOCK, &[5], 1000);
    assert_eq!(messages(&ev), vec![(a, cmd::LOCK, vec![])]);
    assert_eq!(dev.next_deadline(), Some(6000));
    for c in [cmd::PING, cmd::CBOR, cmd::WINK, cmd::LOCK] {
        let ev = send_msg(&mut dev, b, c, &[0], 2000);
        assert_eq!(errors(&ev), vec![(b, err::CHANNEL_BUSY)], "cmd {c:#x}");
    }
    // The owner works normally; INIT is never refused.
    assert_eq!(ping(&mut dev, a, &[1], 2000), vec![(a, cmd::PING, vec![1])]);
    let c = open(&mut dev, 2000);
    assert_eq!(
        messages(&send_msg(&mut dev, b, cmd::INIT, &NONCE, 2000))[0].1,
        cmd::INIT
    );
    let ev = send_msg(&mut dev, c, cmd::PING, &[1], 5999);
    assert_eq!(errors(&ev), vec![(c, err::CHANNEL_BUSY)]);
    assert!(dev.poll(6000, KeepaliveStatus::Processing).is_empty());
    assert_eq!(dev.next_deadline(), None);
    assert_eq!(ping(&mut dev, b, &[2], 6000), vec![(b, cmd::PING, vec![2])]);
}

#[test]
fn lock_expiry_is_noticed_without_poll() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let b = open(&mut dev, 0);
    send_msg(&mut dev, a, cmd::LOCK, &[1], 0);
    assert_eq!(ping(&mut dev, b, &[2], 1000), vec![(b, cmd::PING, vec![2])]);
}

#[test]
fn lock_zero_unlocks_and_only_the_owner_can() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let b = open(&mut dev, 0);
    send_msg(&mut dev, a, cmd::LOCK, &[10], 0);
    let ev = send_msg(&mut dev, b, cmd::LOCK, &[0], 10);
    assert_eq!(errors(&ev), vec![(b, err::CHANNEL_BUSY)]);
    let ev = send_msg(&mut dev, a, cmd::LOCK, &[0], 10);
    assert_eq!(messages(&ev), vec![(a, cmd::LOCK, vec![])]);
    assert_eq!(ping(&mut dev, b, &[2], 20), vec![(b, cmd::PING, vec![2])]);
    // Re-locking extends the owner's lock.
    send_msg(&mut dev, a, cmd::LOCK, &[2], 100);
    send_msg(&mut dev, a, cmd::LOCK, &[10], 1000);
    assert_eq!(dev.next_deadline(), Some(11_000));
}

#[test]
fn lock_parameter_checks() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    for s in [11u8, 60, 255] {
        let ev = send_msg(&mut dev, a, cmd::LOCK, &[s], 0);
        assert_eq!(errors(&ev), vec![(a, err::INVALID_PAR)]);
    }
    for body in [&[][..], &[1, 2][..]] {
        let ev = send_msg(&mut dev, a, cmd::LOCK, body, 0);
        assert_eq!(errors(&ev), vec![(a, err::INVALID_LEN)]);
    }
    assert!(dev.lock.is_none());
}

#[test]
fn lock_owner_resync_keeps_the_lock() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let b = open(&mut dev, 0);
    send_msg(&mut dev, a, cmd::LOCK, &[3], 0);
    send_msg(&mut dev, a, cmd::INIT, &NONCE, 10);
    let ev = send_msg(&mut dev, b, cmd::PING, &[1], 20);
    assert_eq!(errors(&ev), vec![(b, err::CHANNEL_BUSY)]);
}

// ---- WINK and unknown commands ----

#[test]
fn wink_replies_empty_and_tells_the_transport() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let ev = send_msg(&mut dev, a, cmd::WINK, &[], 0);
    assert_eq!(messages(&ev), vec![(a, cmd::WINK, vec![])]);
    assert_eq!(ev.last(), Some(&Event::Wink { cid: a }));
    let ev = send_msg(&mut dev, a, cmd::WINK, &[1], 0);
    assert_eq!(errors(&ev), vec![(a, err::INVALID_LEN)]);
    assert!(!ev.iter().any(|e| matches!(e, Event::Wink { .. })));
}

#[test]
fn unknown_and_device_only_commands_are_invalid_cmd() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    for c in [
        0x00,
        0x02,
        0x05,
        0x07,
        0x12,
        cmd::KEEPALIVE,
        cmd::ERROR,
        0x40,
        0x7f,
    ] {
        let ev = send_msg(&mut dev, a, c, &[1, 2, 3], 0);
        assert_eq!(errors(&ev), vec![(a, err::INVALID_CMD)], "cmd {c:#x}");
    }
    // A long unknown command is refused at once; its tail is ignored.
    let ev = send_msg(&mut dev, a, 0x41, &pattern(500), 0);
    assert_eq!(errors(&ev), vec![(a, err::INVALID_CMD)]);
    assert!(dev.assembly.is_none());
}

// ---- channel table ----

#[test]
fn channel_table_is_bounded_and_evicts_least_recently_used() {
    let mut dev = Ctaphid::new();
    let first = open(&mut dev, 0);
    let busy = open(&mut dev, 0);
    let txn = start_request(&mut dev, busy, 0);
    let mut last = 0;
    for _ in 0..3 * MAX_CHANNELS {
        last = open(&mut dev, 0);
        assert!(dev.channels.len() <= MAX_CHANNELS);
    }
    let ev = send_msg(&mut dev, first, cmd::PING, &[1], 0);
    assert_eq!(errors(&ev), vec![(first, err::INVALID_CHANNEL)]);
    // The channel with the running request survived.
    let ev = dev.respond(txn, cmd::CBOR, &[0], 0);
    assert_eq!(messages(&ev), vec![(busy, cmd::CBOR, vec![0])]);
    assert_eq!(ping(&mut dev, busy, &[1], 0), vec![(busy, cmd::PING, vec![1])]);
    assert_eq!(ping(&mut dev, last, &[1], 0), vec![(last, cmd::PING, vec![1])]);
}

#[test]
fn used_channels_are_kept_over_idle_ones() {
    let mut dev = Ctaphid::new();
    let kept = open(&mut dev, 0);
    for _ in 0..MAX_CHANNELS - 1 {
        open(&mut dev, 0);
        // `kept` stays in use the whole time.
        assert_eq!(ping(&mut dev, kept, &[1], 0).len(), 1);
    }
    for _ in 0..MAX_CHANNELS - 1 {
        open(&mut dev, 0);
    }
    assert_eq!(ping(&mut dev, kept, &[1], 0).len(), 1);
}

#[test]
fn allocation_skips_reserved_and_live_ids() {
    let mut dev = Ctaphid::new();
    dev.next_cid = u32::MAX - 1;
    let a = open(&mut dev, 0);
    let b = open(&mut dev, 0);
    assert_eq!((a, b), (u32::MAX - 1, 1));
    dev.next_cid = a;
    assert_eq!(
        open(&mut dev, 0),
        2,
        "a and 1 are taken, broadcast and 0 are reserved"
    );
}

// ---- power cycle ----

#[test]
fn power_cycle_forgets_everything() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    let b = open(&mut dev, 0);
    send_msg(&mut dev, b, cmd::LOCK, &[10], 0);
    let txn = {
        send_msg(&mut dev, b, cmd::LOCK, &[0], 0);
        let t = start_request(&mut dev, a, 0);
        send_msg(&mut dev, a, cmd::LOCK, &[0], 0);
        t
    };
    dev.power_cycle();
    assert!(!dev.busy());
    assert_eq!(dev.next_deadline(), None);
    assert!(dev.respond(txn, cmd::CBOR, &[0], 1).is_empty());
    for cid in [a, b] {
        let ev = send_msg(&mut dev, cid, cmd::PING, &[1], 1);
        assert_eq!(errors(&ev), vec![(cid, err::INVALID_CHANNEL)]);
    }
    let c = open(&mut dev, 2);
    assert!(c != a && c != b, "a stale client cannot land on a new channel");
    let t2 = start_request(&mut dev, c, 3);
    assert_ne!(t2, txn);
    assert!(dev.respond(txn, cmd::CBOR, &[0], 4).is_empty());
    assert!(dev.busy());
}

#[test]
fn power_cycle_drops_partial_messages_and_locks() {
    let mut dev = Ctaphid::new();
    let a = open(&mut dev, 0);
    send_msg(&mut dev, a, cmd::LOCK, &[10], 0);
    assert!(one(&mut dev, init_pkt(a, cmd::PING, 100, &[1; 57]), 0).is_empty());
    dev.power_cycle();
    assert!(dev.poll(10_000, KeepaliveStatus::Processing).is_empty());
    let b = open(&mut dev, 1);
    assert_eq!(ping(&mut dev, b, &[3], 1), vec![(b, cmd::PING, vec![3])]);
}

// ---- robustness ----

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

#[test]
fn random_reports_never_panic_or_break_invariants() {
    for seed in [1u64, 0xdead_beef, 0x1234_5678_9abc_def0] {
        let mut rng = Rng(seed);
        let mut dev = Ctaphid::new();
        let mut known: Vec<u32> = vec![BROADCAST_CID, 0];
        let mut txns: Vec<u64> = Vec::new();
        let mut now: Millis = 0;
        let cmds = [
            cmd::PING,
            cmd::MSG,
            cmd::LOCK,
            cmd::INIT,
            cmd::WINK,
            cmd::CBOR,
            cmd::CANCEL,
            cmd::KEEPALIVE,
            cmd::ERROR,
        ];
        for _ in 0..20_000 {
            now += rng.below(120);
            let events = match rng.below(10) {
                0 => dev.poll(
                    now,
                    if rng.below(2) == 0 {
                        KeepaliveStatus::Processing
                    } else {
                        KeepaliveStatus::UpNeeded
                    },
                ),
                1 => {
                    let txn = match txns.last() {
                        Some(&t) if rng.below(4) != 0 => t,
                        _ => rng.next(),
                    };
                    let len = rng.below(300) as usize;
                    let body: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
                    dev.respond(txn, rng.byte(), &body, now)
                }
                2 => {
                    let len = rng.below(130) as usize;
                    let junk: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
                    dev.handle_report(&junk, now)
                }
                3 if rng.below(400) == 0 => {
                    dev.power_cycle();
                    Vec::new()
                }
                4 => dev.handle_report(&init_pkt(BROADCAST_CID, cmd::INIT, 8, &NONCE), now),
                _ => {
                    let mut r = [0u8; 64];
                    for b in r.iter_mut() {
                        *b = rng.byte();
                    }
                    let cid = match rng.below(8) {
                        0 => rng.next() as u32,
                        1 => known[rng.below(known.len() as u64) as usize],
                        // Mostly the newest channels, which are likely still open.
                        _ => known[known.len() - 1 - rng.below(known.len().min(3) as u64) as usize],
                    };
                    r[..4].copy_from_slice(&cid.to_be_bytes());
                    match rng.below(4) {
                        0 | 1 => r[4] = 0x80 | cmds[rng.below(cmds.len() as u64) as usize],
                        // Continuations, mostly with plausible sequence numbers.
                        2 if rng.below(2) == 0 => r[4] = rng.below(4) as u8,
                        2 => r[4] = rng.byte() & 0x7f,
                        _ => {}
                    }
                    if r[4] & 0x80 != 0 && rng.below(4) != 0 {
                        // Mostly plausible lengths, so assembly paths get exercised.
                        let len = rng.below(250) as u16;
                        r[5..7].copy_from_slice(&len.to_be_bytes());
                        if r[4] == 0x80 | cmd::INIT && rng.below(2) == 0 {
                            r[5..7].copy_from_slice(&8u16.to_be_bytes());
                        }
                        if r[4] == 0x80 | cmd::LOCK {
                            r[5..8].copy_from_slice(&[0, 1, rng.below(12) as u8]);
                        }
                    }
                    dev.handle_report(&r, now)
                }
            };
            for e in &events {
                match e {
                    Event::Send { cid, report } => {
                        assert_eq!(&report[..4], &cid.to_be_bytes());
                        if report[4] == 0x80 | cmd::INIT && *cid == BROADCAST_CID {
                            let new = u32::from_be_bytes(report[15..19].try_into().unwrap());
                            assert!(new != 0 && new != BROADCAST_CID);
                            known.push(new);
                        }
                    }
                    Event::Request { txn, payload, .. } => {
                        assert!(payload.len() <= MAX_MSG_SIZE);
                        txns.push(*txn);
                    }
                    Event::Cancel { .. } | Event::Wink { .. } => {}
                }
            }
            assert!(dev.channels.len() <= MAX_CHANNELS);
            assert!(!dev.channels.contains(&0) && !dev.channels.contains(&BROADCAST_CID));
            assert!(dev.assembly.is_none() || dev.outstanding.is_none());
            if let Some(d) = dev.next_deadline() {
                assert!(d <= now.saturating_add(TRANSACTION_TIMEOUT_MS.max(10_000)));
            }
        }
        // Whatever happened, a power cycle brings back a working device.
        dev.power_cycle();
        let a = open(&mut dev, now);
        assert_eq!(
            ping(&mut dev, a, b"ok", now),
            vec![(a, cmd::PING, b"ok".to_vec())]
        );
    }
}

/// What python-fido2 does on open: INIT on broadcast, then getInfo on the
/// new channel, reading keepalives until the (three-packet) answer comes.
#[test]
fn python_fido2_style_session() {
    let mut dev = Ctaphid::new();
    let cid = open(&mut dev, 0);
    let ev = send_msg(&mut dev, cid, cmd::CBOR, &[0x04], 1);
    let (txn, _, c, p) = requests(&ev).remove(0);
    assert_eq!((c, p), (cmd::CBOR, vec![0x04]));
    let ka = dev.poll(81, KeepaliveStatus::UpNeeded);
    assert_eq!(messages(&ka), vec![(cid, cmd::KEEPALIVE, vec![2])]);
    let info = pattern(0xa9);
    let ev = dev.respond(txn, cmd::CBOR, &info, 90);
    assert_eq!(ev.len(), 3);
    assert_eq!(messages(&ev), vec![(cid, cmd::CBOR, info)]);
}
