//! The process's allocator: mimalloc instead of glibc's malloc.
//!
//! Under load, glibc's malloc and free were the largest single item of a compute node's profile
//! (12–14 % of its CPU) and its arenas fragmented (docs/testing.md, "Allocator"). mimalloc as
//! built by default keeps memory it no longer uses in the process's resident set: it commits
//! whole 1 GiB arenas at once on Linux and lets freed pages go lazily, and it asks for
//! transparent huge pages, which turns a touched 4 KiB into 2 MiB, and it returns freed pages
//! to the system only after they stayed free for a second — a validator that needs 70 MB
//! showed 440 MB of RSS (270–390 MB without huge pages and eager commit). So: no huge pages
//! (the crate's `no_thp` build, and transparent huge pages off for the process, since a kernel
//! set to `always` backs mimalloc's aligned regions with them unasked), arenas committed page by
//! page as they are used, and freed pages returned at once, set before the first allocation.
//! Measured: docs/testing.md.
//!
//! Not in fuzz builds: AddressSanitizer sees only what goes through malloc.

#[cfg(not(fuzzing))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` and `mi_option_purge_delay` in mimalloc v3's `mi_option_e`
/// (libmimalloc-sys 0.1.49, pinned in Cargo.toml: the bindings do not export these indices;
/// `MIMALLOC_VERBOSE=1 paratime-node --version` lists the options in index order).
#[cfg(not(fuzzing))]
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
#[cfg(not(fuzzing))]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[cfg(not(fuzzing))]
extern "C" fn configure() {
    // SAFETY: stores values in mimalloc's static option table; runs before `main`, before any
    // thread exists, as the function requires.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
    // No transparent huge pages for this process and what it starts (the flag is inherited
    // across fork and exec: the sandboxed runtime gets it too, so its memory limit counts 4 KiB
    // pages, not 2 MiB ones it touched once). Best effort: a kernel without the prctl (< 3.15)
    // keeps its setting, and nothing here may fail before `main`.
    // SAFETY: prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) takes no pointers and only sets a flag.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Runs `configure` while the program is loaded, before Rust's runtime or `main` allocates.
#[cfg(not(fuzzing))]
#[used]
#[link_section = ".init_array"]
static CONFIGURE: extern "C" fn() = configure;

#[cfg(all(test, not(fuzzing)))]
mod tests {
    #[test]
    fn arenas_are_committed_as_used() {
        // The options were set before this test's first allocation.
        // SAFETY: reads mimalloc's option table.
        let (eager, delay) = unsafe {
            (
                libmimalloc_sys::mi_option_get(super::MI_OPTION_ARENA_EAGER_COMMIT),
                libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY),
            )
        };
        assert_eq!((eager, delay), (0, 0));
        let boxed = Box::new([7u8; 4096]);
        // SAFETY: asks mimalloc whether a pointer is one of its blocks.
        assert!(unsafe { libmimalloc_sys::mi_is_in_heap_region(boxed.as_ptr().cast()) });
    }

    #[test]
    fn no_transparent_huge_pages_for_the_process_and_its_children() {
        // The kernel reports the process's flag in its status ("THP_enabled", since Linux 5.0).
        let own = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        assert!(own.contains("THP_enabled:\t0"), "THP still enabled:\n{own}");
        // A child (as the launcher, bwrap and the runtime are) inherits it across exec.
        let child = std::process::Command::new("grep")
            .args(["THP_enabled", "/proc/self/status"])
            .output()
            .expect("run grep");
        assert_eq!(
            String::from_utf8_lossy(&child.stdout).trim(),
            "THP_enabled:\t0"
        );
    }
}
