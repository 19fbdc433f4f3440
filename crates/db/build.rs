//! Embeds the SQL migrations so the binary carries them.
#![allow(clippy::unwrap_used, clippy::panic)] // build-time failures should stop the build loudly
use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut out = String::new();
    for (set, konst) in [("core", "CORE"), ("tenant", "TENANT")] {
        let dir = root.join(set);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        writeln!(out, "pub(crate) const {konst}: &[Migration] = &[").unwrap();
        for (i, path) in files.iter().enumerate() {
            println!("cargo:rerun-if-changed={}", path.display());
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            let (num, name) = stem
                .split_once('_')
                .unwrap_or_else(|| panic!("{stem}: expected NNNN_name.sql"));
            let version: i32 = num
                .parse()
                .unwrap_or_else(|_| panic!("{stem}: expected NNNN_name.sql"));
            assert_eq!(
                version as usize,
                i + 1,
                "{set} migrations must be numbered 1, 2, 3… without gaps"
            );
            writeln!(
                out,
                "    Migration {{ version: {version}, name: {name:?}, sql: include_str!({:?}) }},",
                path.canonicalize().unwrap().display().to_string()
            )
            .unwrap();
        }
        writeln!(out, "];").unwrap();
    }
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("migrations.rs");
    std::fs::write(dest, out).unwrap();
}
