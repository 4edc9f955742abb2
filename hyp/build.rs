fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../linker");
    println!("cargo:rerun-if-changed={}", dir.join("hyp.ld").display());
    println!("cargo:rerun-if-changed=src/arch/boot.S");
    println!("cargo:rerun-if-changed=src/arch/vectors.S");
    println!("cargo:rustc-link-arg-bins=-T{}", dir.join("hyp.ld").display());
}
