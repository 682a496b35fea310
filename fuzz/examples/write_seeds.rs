//! Writes the seed corpus: `cargo run --manifest-path fuzz/Cargo.toml --example write_seeds`.
//! Each seed is a valid request or flow (fuzz/src/lib.rs, `seeds`).
fn main() -> std::io::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for (target, name, bytes) in lp_fuzz::seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
    }
    println!("seeds written to {}", root.display());
    Ok(())
}
