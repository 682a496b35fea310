"""The vault blob's format and the PIN gate's NV indices, read from outside.

The format is documented in crates/lp-tpm/src/lib.rs (`VaultBlob::to_bytes`);
an attacker who has read the source reads it the same way. The TPM state is
read with tpm2-tools, not with our code.
"""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Vault:
    pin_index: int
    generation_counter: int
    epoch_counter: int
    epoch: int
    legacy_vault: bool
    public: bytes  # TPM2B_PUBLIC of V, size included
    private: bytes
    seals: list[tuple[int, bytes, bytes]]  # (generation, TPM2B_PUBLIC, TPM2B_PRIVATE)


def _tpm2b(b: bytes, at: int) -> tuple[bytes, int]:
    n = int.from_bytes(b[at:at + 2], "big")
    end = at + 2 + n
    assert end <= len(b), "truncated TPM2B"
    return b[at:end], end


def parse_vault(blob: bytes) -> Vault:
    assert blob[:4] == b"LPV\x02", f"not a vault with a PIN gate: {blob[:4]!r}"
    u32 = lambda at: int.from_bytes(blob[at:at + 4], "big")
    pin, gen, epoch_counter = u32(4), u32(8), u32(12)
    epoch = int.from_bytes(blob[16:24], "big")
    legacy = blob[24] == 1
    public, at = _tpm2b(blob, 25)
    private, at = _tpm2b(blob, at)
    count = blob[at]
    at += 1
    seals = []
    for _ in range(count):
        g = int.from_bytes(blob[at:at + 8], "big")
        spub, at = _tpm2b(blob, at + 8)
        spriv, at = _tpm2b(blob, at)
        seals.append((g, spub, spriv))
    assert at == len(blob), "trailing bytes"
    return Vault(pin, gen, epoch_counter, epoch, legacy, public, private, seals)


def stored_vault(db: Path) -> bytes:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        (value,), = c.execute("SELECT value FROM meta WHERE key = 'pin.vault'").fetchall()
    return bytes(value)


def pin_counts(tpm, index: int) -> tuple[int, int]:
    """(pinCount, pinLimit) of a PIN index, read with the owner's (empty) authorisation."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "counts"
        r = tpm.tool("tpm2_nvread", "-C", "o", "-s", "8", "-o", str(out), f"{index:#x}", check=False)
        assert r.returncode == 0, f"tpm2_nvread {index:#x}: {r.stderr}"
        raw = out.read_bytes()
    return int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:8], "big")
