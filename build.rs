//! Release builds of the server place the code that serving runs side by side, in the order of
//! `bench/symbol-order.txt`, so the kernel maps a third fewer pages of the binary (bench/README.md,
//! "Code layout"). Symbols the list does not name, or no longer names, keep the linker's order.
use std::env;
use std::path::PathBuf;

fn main() {
    let order = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("bench/symbol-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=LADDER_SYMBOL_ORDER");
    let release = env::var("PROFILE").as_deref() == Ok("release");
    // rust-lld, which reads the list, is this target's default linker; LADDER_SYMBOL_ORDER=0 is for
    // builds configured to link with another one.
    let lld = env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu");
    let wanted = env::var("LADDER_SYMBOL_ORDER").as_deref() != Ok("0");
    if release && lld && wanted && order.is_file() {
        println!("cargo:rustc-link-arg-bin=ladder=-Wl,--symbol-ordering-file={}", order.display());
        println!("cargo:rustc-link-arg-bin=ladder=-Wl,--no-warn-symbol-ordering");
    }
}
