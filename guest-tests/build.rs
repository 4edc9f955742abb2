fn main() {
    let ld = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../linker/guest.ld");
    println!("cargo:rerun-if-changed={}", ld.display());
    println!("cargo:rerun-if-changed=src/rt/entry.S");
    println!("cargo:rustc-link-arg-bins=-T{}", ld.display());
}
