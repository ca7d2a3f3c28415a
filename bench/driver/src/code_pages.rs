//! `code-pages`: the functions of a running server's binary that lie on pages of code it has
//! touched, in the form the linker's `--symbol-ordering-file` reads (bench/symbol-order.sh).
//!
//! The kernel maps a page of a binary on the first touch and, with it, every page of the 64 KiB
//! around it that is already in the page cache. With read-ahead off and the binary evicted from
//! the cache before the server starts, nothing is cached that was not touched, so a page present
//! in the process's page table is a page its code ran on.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

const PAGE: u64 = 4096;

#[derive(Args)]
pub struct CodePagesArgs {
    /// The running server
    #[arg(long)]
    pid: u32,
    /// Its executable (as it was started)
    #[arg(long)]
    binary: PathBuf,
    /// Another build of the same source (say, without bench features), whose matching functions
    /// are listed too: its generic code carries other hashes
    #[arg(long)]
    also: Vec<PathBuf>,
}

struct Symbol {
    addr: u64,
    size: u64,
    name: String,
}

pub fn code_pages(args: &CodePagesArgs) -> Result<()> {
    let touched = touched_pages(args.pid, &args.binary)?;
    let symbols = text_symbols(&args.binary)?;
    let on_touched = |s: &&Symbol| (s.addr / PAGE..=(s.addr + s.size - 1) / PAGE).any(|p| touched.contains(&p));
    let hot: Vec<&Symbol> = symbols.iter().filter(on_touched).collect();
    eprintln!(
        "{} KiB of code touched; {} functions ({} KiB) lie on it",
        touched.len() as u64 * PAGE / 1024,
        hot.len(),
        hot.iter().map(|s| s.size).sum::<u64>() / 1024
    );
    // Another build's function of the same name up to the hash and of the same size is taken for
    // the same code: the size tells apart generic instances that legacy names do not.
    let keys: HashSet<(&str, u64)> = hot.iter().map(|s| (unhashed(&s.name), s.size)).collect();
    let mut listed: HashSet<String> = HashSet::new();
    let mut out = String::new();
    let mut list = |name: &str| {
        if listed.insert(name.to_owned()) {
            out.push_str(name);
            out.push('\n');
        }
    };
    for s in &hot {
        list(&s.name);
    }
    for other in &args.also {
        for s in text_symbols(other)? {
            if keys.contains(&(unhashed(&s.name), s.size)) {
                list(&s.name);
            }
        }
    }
    print!("{out}");
    Ok(())
}

/// Page numbers (from the binary's load address) of its executable mappings present in `pid`.
fn touched_pages(pid: u32, binary: &Path) -> Result<HashSet<u64>> {
    let binary = binary.canonicalize().with_context(|| format!("{}", binary.display()))?;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).context("reading the server's memory map")?;
    let mut base = None;
    let mut executable = Vec::new();
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 6 || Path::new(fields[5]) != binary {
            continue;
        }
        let (start, end) = fields[0].split_once('-').context("a memory map line without a range")?;
        let (start, end) = (u64::from_str_radix(start, 16)?, u64::from_str_radix(end, 16)?);
        if u64::from_str_radix(fields[2], 16)? == 0 {
            base.get_or_insert(start);
        }
        if fields[1].contains('x') {
            executable.push((start, end));
        }
    }
    let Some(base) = base else { bail!("process {pid} has not mapped {}", binary.display()) };
    let mut pagemap = File::open(format!("/proc/{pid}/pagemap")).context("opening the page map (needs root)")?;
    let mut touched = HashSet::new();
    for (start, end) in executable {
        let mut entries = vec![0u8; ((end - start) / PAGE * 8) as usize];
        pagemap.seek(SeekFrom::Start(start / PAGE * 8))?;
        pagemap.read_exact(&mut entries)?;
        for (i, entry) in entries.chunks_exact(8).enumerate() {
            // Bit 63: the page is present.
            if u64::from_le_bytes(entry.try_into().unwrap()) >> 63 == 1 {
                touched.insert((start - base) / PAGE + i as u64);
            }
        }
    }
    Ok(touched)
}

/// The binary's function symbols with a size, in address order (from `nm`).
fn text_symbols(binary: &Path) -> Result<Vec<Symbol>> {
    let out = Command::new("nm")
        .args(["--defined-only", "--print-size", "--numeric-sort"])
        .arg(binary)
        .output()
        .context("running nm (binutils)")?;
    if !out.status.success() {
        bail!("nm {}: {}", binary.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let mut symbols = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [addr, size, "t" | "T", name] = fields[..] {
            let size = u64::from_str_radix(size, 16)?;
            if size > 0 {
                symbols.push(Symbol { addr: u64::from_str_radix(addr, 16)?, size, name: name.to_owned() });
            }
        }
    }
    if symbols.is_empty() {
        bail!("{} has no function symbols (stripped?)", binary.display());
    }
    Ok(symbols)
}

/// A symbol's name without what differs between builds of the same source: the hash that legacy
/// mangling ends with (`17h` and 16 hex digits, then `E`) and the link-time optimiser's numeric
/// suffixes (`.123`, `.llvm.456`).
fn unhashed(name: &str) -> &str {
    let mut name = name;
    while let Some((head, tail)) = name.rsplit_once('.') {
        if tail == "llvm" || (!tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit())) {
            name = head;
        } else {
            break;
        }
    }
    let n = name.len();
    let hashed = n > 20
        && name.ends_with('E')
        && name[n - 20..].starts_with("17h")
        && name[n - 17..n - 1].bytes().all(|b| b.is_ascii_hexdigit());
    if hashed { &name[..n - 20] } else { name }
}

#[cfg(test)]
mod tests {
    use super::{PAGE, text_symbols, touched_pages, unhashed};

    #[test]
    fn the_page_of_code_just_run_is_touched_and_named() {
        let exe = std::env::current_exe().unwrap();
        let addr = unhashed as *const () as u64;
        assert_eq!(unhashed("x.1"), "x");
        let touched = touched_pages(std::process::id(), &exe).unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let exe_name = exe.canonicalize().unwrap();
        let base = maps
            .lines()
            .find(|l| l.ends_with(exe_name.to_str().unwrap()))
            .map(|l| u64::from_str_radix(l.split('-').next().unwrap(), 16).unwrap())
            .unwrap();
        assert!(touched.contains(&((addr - base) / PAGE)), "the page of `unhashed` is not present");
        let symbols = text_symbols(&exe).unwrap();
        assert!(symbols.iter().any(|s| s.addr == addr - base && s.name.contains("unhashed")));
    }

    #[test]
    fn names_lose_only_what_differs_between_builds() {
        assert_eq!(unhashed("_ZN4core3ptr13drop_in_place17h0123456789abcdefE"), "_ZN4core3ptr13drop_in_place");
        assert_eq!(unhashed("_ZN3foo3bar17h0123456789abcdefE.llvm.1234"), "_ZN3foo3bar");
        assert_eq!(unhashed("_RNvMs0_NtCs1_3std5waker6notify.1422"), "_RNvMs0_NtCs1_3std5waker6notify");
        assert_eq!(unhashed("_ZN3foo3bar17hnothexatallxxxxxE"), "_ZN3foo3bar17hnothexatallxxxxxE");
        assert_eq!(unhashed("memcpy"), "memcpy");
        assert_eq!(unhashed("foo.cold"), "foo.cold");
    }
}
