//! What every fuzz target shares: an allocator that aborts on any single allocation over a
//! bound (libFuzzer then keeps the input as a crash), so "no allocation over a bound" is
//! checked on every execution, not only the process's peak memory.

use std::alloc::{GlobalAlloc, Layout, System};

/// Largest single allocation a hostile input may cause. The recording reader caps a frame at
/// 16 MiB; everything else is proportional to the input (at most 1 MiB under `cargo xtask
/// fuzz`).
pub const MAX_ALLOC: usize = 64 << 20;

pub struct Bounded;

fn check(size: usize) {
    if size > MAX_ALLOC {
        // No formatting machinery here: it may allocate.
        let msg = b"fuzz: an allocation over the bound (64 MiB)\n";
        // SAFETY: writing a static buffer to stderr.
        unsafe { libc_write(2, msg.as_ptr(), msg.len()) };
        std::process::abort();
    }
}

extern "C" {
    #[link_name = "write"]
    fn libc_write(fd: i32, buf: *const u8, n: usize) -> isize;
}

// SAFETY: forwards to the system allocator after the size check.
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        check(l.size());
        System.alloc(l)
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        check(l.size());
        System.alloc_zeroed(l)
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        check(new);
        System.realloc(p, l, new)
    }
}
